package commands

import (
	"fmt"

	"github.com/urfave/cli/v2"
)

func envCommand(io IO) *cli.Command {
	return &cli.Command{Name: "env", Usage: "(not built yet)", Action: func(*cli.Context) error {
		return exitCode(ExitFailure, fmt.Errorf("env: not built yet"))
	}}
}
