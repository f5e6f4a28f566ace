package commands

import (
	"fmt"

	"github.com/urfave/cli/v2"
)

func versionCommand(io IO) *cli.Command {
	return &cli.Command{Name: "version", Usage: "(not built yet)", Action: func(*cli.Context) error {
		return exitCode(ExitFailure, fmt.Errorf("version: not built yet"))
	}}
}
