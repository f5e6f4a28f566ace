package commands

import (
	"fmt"

	"github.com/urfave/cli/v2"
)

func deviceCommand(io IO) *cli.Command {
	return &cli.Command{Name: "device", Usage: "(not built yet)", Action: func(*cli.Context) error {
		return exitCode(ExitFailure, fmt.Errorf("device: not built yet"))
	}}
}
