package commands

import (
	"fmt"

	"github.com/urfave/cli/v2"
)

func loginCommand(io IO) *cli.Command {
	return &cli.Command{Name: "login", Usage: "(not built yet)", Action: func(*cli.Context) error {
		return exitCode(ExitFailure, fmt.Errorf("login: not built yet"))
	}}
}

func logoutCommand(io IO) *cli.Command {
	return &cli.Command{Name: "logout", Usage: "(not built yet)", Action: func(*cli.Context) error {
		return exitCode(ExitFailure, fmt.Errorf("logout: not built yet"))
	}}
}

func authCommand(io IO) *cli.Command {
	return &cli.Command{Name: "auth", Usage: "(not built yet)", Action: func(*cli.Context) error {
		return exitCode(ExitFailure, fmt.Errorf("auth: not built yet"))
	}}
}
