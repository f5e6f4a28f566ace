package commands

import (
	"fmt"

	"github.com/urfave/cli/v2"
)

func runCommand(io IO) *cli.Command {
	return &cli.Command{Name: "run", Usage: "(not built yet)", Action: func(*cli.Context) error {
		return exitCode(ExitFailure, fmt.Errorf("run: not built yet"))
	}}
}
