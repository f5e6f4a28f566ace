package commands

import (
	"fmt"

	"github.com/urfave/cli/v2"
)

func manCommand(io IO) *cli.Command {
	return &cli.Command{Name: "man", Usage: "(not built yet)", Action: func(*cli.Context) error {
		return exitCode(ExitFailure, fmt.Errorf("man: not built yet"))
	}}
}
