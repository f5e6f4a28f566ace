package commands

import (
	"fmt"

	"github.com/urfave/cli/v2"
)

func serveCommand(io IO) *cli.Command {
	return &cli.Command{Name: "serve", Usage: "(not built yet)", Action: func(*cli.Context) error {
		return exitCode(ExitFailure, fmt.Errorf("serve: not built yet"))
	}}
}
