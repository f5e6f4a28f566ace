package commands

import (
	"fmt"

	"github.com/urfave/cli/v2"
)

func routeCommand(io IO) *cli.Command {
	return &cli.Command{Name: "route", Usage: "(not built yet)", Action: func(*cli.Context) error {
		return exitCode(ExitFailure, fmt.Errorf("route: not built yet"))
	}}
}
