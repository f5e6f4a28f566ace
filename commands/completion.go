package commands

import (
	"fmt"

	"github.com/urfave/cli/v2"
)

func completionCommand(io IO) *cli.Command {
	return &cli.Command{Name: "completion", Usage: "(not built yet)", Action: func(*cli.Context) error {
		return exitCode(ExitFailure, fmt.Errorf("completion: not built yet"))
	}}
}
