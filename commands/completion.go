package commands

import (
	"fmt"
	"strings"

	"github.com/tessel/tessel-proxy/completions"
	"github.com/urfave/cli/v2"
)

func completionCommand(io IO) *cli.Command {
	return &cli.Command{
		Name:        "completion",
		Usage:       "print the shell completion script for bash, zsh, fish or PowerShell",
		ArgsUsage:   strings.Join(completions.Shells, "|"),
		Description: completions.Help("tessel-proxy"),
		Action: func(c *cli.Context) error {
			if c.NArg() != 1 {
				return usageError("completion needs the name of one shell: %s",
					strings.Join(completions.Shells, ", "))
			}
			script, err := completions.Script(c.Args().First(), c.App.Name)
			if err != nil {
				return usageError("%w", err)
			}
			_, err = fmt.Fprint(io.Out, script)
			return err
		},
	}
}

// finishApp adds to the finished command tree what is derived from it: shell completion for
// every command, and the version that --version prints.
func finishApp(app *cli.App, io IO) {
	app.Version = currentVersion().String()
	completions.Install(app, completions.Options{LookupEnv: io.LookupEnv})
}
