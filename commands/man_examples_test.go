package commands

import (
	"bytes"
	"slices"
	"strings"
	"testing"

	"github.com/urfave/cli/v2"
)

// The examples in the manual must run commands and flags that exist.
func TestManExamplesUseRealCommandsAndFlags(t *testing.T) {
	app := NewApp(IO{In: strings.NewReader(""), Out: &bytes.Buffer{}, Err: &bytes.Buffer{},
		LookupEnv: func(string) (string, bool) { return "", false }})
	for _, ex := range manExamples {
		words := strings.Fields(ex.Command)
		if words[0] != app.Name {
			t.Errorf("example %q does not start with %s", ex.Command, app.Name)
			continue
		}
		cmds, flags := app.Commands, app.Flags
		var path []string
		rest := words[1:]
		for len(rest) > 0 {
			i := slices.IndexFunc(cmds, func(c *cli.Command) bool { return c.HasName(rest[0]) })
			if i < 0 {
				break
			}
			path = append(path, rest[0])
			cmds, flags = cmds[i].Subcommands, cmds[i].Flags
			rest = rest[1:]
		}
		if len(path) == 0 {
			t.Errorf("example %q names no command", ex.Command)
			continue
		}
		for _, w := range rest {
			if w == "--" || !strings.HasPrefix(w, "-") {
				if w == "--" {
					break
				}
				continue
			}
			name, _, _ := strings.Cut(strings.TrimLeft(w, "-"), "=")
			if !slices.ContainsFunc(flags, func(f cli.Flag) bool { return slices.Contains(f.Names(), name) }) {
				t.Errorf("example %q: %s %s has no flag %s", ex.Command, app.Name, strings.Join(path, " "), w)
			}
		}
	}
}
