package completions

import (
	"bytes"
	"slices"
	"strings"
	"testing"

	"github.com/urfave/cli/v2"
)

// testApp is a small tree shaped like the program's: groups, leaves, a --device flag, and
// the commands whose arguments have known values.
func testApp(out *bytes.Buffer, args []string) *cli.App {
	device := &cli.StringFlag{Name: "device", Aliases: []string{"d"}, Usage: "the `NAME` of a device"}
	noop := func(*cli.Context) error { return nil }
	app := &cli.App{
		Name:                 "tp",
		Writer:               out,
		EnableBashCompletion: true,
		HideHelpCommand:      true,
		Commands: []*cli.Command{
			{Name: "env", Usage: "configure a device", Subcommands: []*cli.Command{
				{Name: "get", Flags: []cli.Flag{device}, Action: noop},
				{Name: "set", Flags: []cli.Flag{device, &cli.BoolFlag{Name: "from-login"}}, Action: noop},
				{Name: "list", Flags: []cli.Flag{device, &cli.BoolFlag{Name: "json"}}, Action: noop},
			}},
			{Name: "device", Subcommands: []*cli.Command{
				{Name: "add", Action: noop},
				{Name: "remove", Aliases: []string{"rm"}, Action: noop},
			}},
			{Name: "completion", Action: noop},
			{Name: "run", Flags: []cli.Flag{&cli.BoolFlag{Name: "debug"}}, Action: noop},
			{Name: "secret", Hidden: true, Action: noop},
		},
	}
	Install(app, Options{
		LookupEnv: func(string) (string, bool) { return "", false },
		Args:      func() []string { return args },
	})
	return app
}

// complete runs one completion request the way the shell scripts send it: the words before
// the cursor, the word under it, and the request flag.
func complete(t *testing.T, words ...string) []string {
	t.Helper()
	args := append(append([]string{"tp"}, words...), RequestFlag)
	var out bytes.Buffer
	if err := testApp(&out, args).Run(args); err != nil {
		t.Fatalf("%q: %v", words, err)
	}
	var got []string
	for _, line := range strings.Split(strings.TrimSpace(out.String()), "\n") {
		if word, _, _ := strings.Cut(line, "\t"); word != "" {
			got = append(got, word)
		}
	}
	return got
}

func TestCandidates(t *testing.T) {
	tests := []struct {
		name  string
		words []string // after the program name; the last is the word under the cursor
		want  []string // exactly, in order
	}{
		{"top-level commands, hidden left out", []string{""}, []string{"env", "device", "completion", "run"}},
		{"a command name being typed is completed, not entered",
			[]string{"env"}, []string{"env", "device", "completion", "run"}},
		{"subcommands of a group", []string{"env", ""}, []string{"get", "set", "list"}},
		{"aliases are offered", []string{"device", ""}, []string{"add", "remove", "rm"}},
		{"flags of a leaf", []string{"env", "list", "-"},
			[]string{"--device", "-d", "--json", "--help", "-h"}},
		{"long flags only after --", []string{"env", "list", "--d"}, []string{"--device", "--json", "--help"}},
		{"a flag already given is not offered again", []string{"env", "list", "--json", "-"},
			[]string{"--device", "-d", "--help", "-h"}},
		{"variable names for env get", []string{"env", "get", ""}, variableWords("")},
		{"variable names and = for env set", []string{"env", "set", "PROXY_T"}, variableWords("=")},
		{"the accepted values of PROXY_TRUSTED", []string{"env", "set", "PROXY_TRUSTED="},
			[]string{"PROXY_TRUSTED=1", "PROXY_TRUSTED=0", "PROXY_TRUSTED=true",
				"PROXY_TRUSTED=false", "PROXY_TRUSTED=yes", "PROXY_TRUSTED=no"}},
		{"a variable without fixed values offers none", []string{"env", "set", "PROXY_HOST="}, nil},
		{"after other assignments", []string{"env", "set", "--from-login", "PROXY_PORT=1", "PROXY_TRUSTED=y"},
			[]string{"PROXY_TRUSTED=1", "PROXY_TRUSTED=0", "PROXY_TRUSTED=true",
				"PROXY_TRUSTED=false", "PROXY_TRUSTED=yes", "PROXY_TRUSTED=no"}},
		{"devices after --device, not variable names", []string{"env", "get", "--device", ""}, []string{"local"}},
		{"devices after -d", []string{"env", "get", "-d", ""}, []string{"local"}},
		{"a device value that is also a command name", []string{"env", "get", "--device", "get"}, []string{"local"}},
		{"devices after --device=", []string{"env", "get", "--device="}, []string{"--device=local"}},
		{"run hands a program name to the shell", []string{"run", "cu"}, []string{":delegate 0"}},
		{"run hands a program name after its flags", []string{"run", "--debug", ""}, []string{":delegate 0"}},
		{"run hands the program's arguments", []string{"run", "curl", "-s", ""}, []string{":delegate 2"}},
		{"run hands the program's flags", []string{"run", "--debug", "curl", "--ver"}, []string{":delegate 1"}},
		{"run's own flags before the program", []string{"run", "--d"}, []string{"--debug", "--help"}},
		{"completion takes a shell", []string{"completion", ""}, Shells},
		{"device add: address after the name", []string{"device", "add", "pi", ""}, []string{"local", "ssh://"}},
		{"device add: nothing known for the name", []string{"device", "add", ""}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := complete(t, tt.words...); !slices.Equal(got, tt.want) {
				t.Errorf("%q<TAB> = %q, want %q", tt.words, got, tt.want)
			}
		})
	}
}

func variableWords(suffix string) []string {
	var out []string
	for _, c := range variableNames(suffix) {
		out = append(out, c.word)
	}
	return out
}

func TestInstallKeepsACommandsOwnCompletion(t *testing.T) {
	var out bytes.Buffer
	own := func(c *cli.Context) { c.App.Writer.Write([]byte("mine\n")) }
	args := []string{"tp", "x", "", RequestFlag}
	app := &cli.App{Name: "tp", Writer: &out, EnableBashCompletion: true,
		Commands: []*cli.Command{{Name: "x", BashComplete: own, Action: func(*cli.Context) error { return nil }}}}
	Install(app, Options{Args: func() []string { return args }})
	if err := app.Run(args); err != nil {
		t.Fatal(err)
	}
	if out.String() != "mine\n" {
		t.Errorf("completion of a command with its own BashComplete printed %q, want its own %q", out.String(), "mine\n")
	}
}
