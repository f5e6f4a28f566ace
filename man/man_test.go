package man

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/tessel/tessel-proxy/proxyconfig"
	"github.com/urfave/cli/v2"
)

// trickyApp has the text that breaks hand-written roff: a line that starts with a dot, a
// backslash, quotes, backquoted words, an indented example and a value placeholder.
func trickyApp() *cli.App {
	return &cli.App{
		Name:  "tp",
		Usage: "test the `pages`",
		Flags: []cli.Flag{&cli.BoolFlag{Name: "verbose", Usage: "say more"}},
		Commands: []*cli.Command{
			{Name: "env", Usage: "configure", Subcommands: []*cli.Command{
				{Name: "set", Usage: "set a variable", ArgsUsage: "KEY=VALUE...",
					Description: ".suffix entries match names under a domain.\n" +
						`A backslash \n stays, "quotes" too, and 'single' ones.` + "\n\nExamples:\n" +
						"  tp env set PROXY_LOCAL='.example.net 10.0.0.0/8'\n\n  tp env set \\\n    A=1",
					Flags: []cli.Flag{
						&cli.StringFlag{Name: "device", Aliases: []string{"d"}, Usage: "the `NAME` of the device", Value: "local"},
						&cli.StringSliceFlag{Name: "from-file", Usage: "read `FILE`"},
						&cli.StringFlag{Name: "secret", Hidden: true},
					}},
			}},
			{Name: "hidden", Hidden: true},
		},
	}
}

var trickyOptions = Options{
	Version:    "v9.9.9",
	Variables:  []proxyconfig.Variable{{Name: "PROXY_LOCAL", Default: "10.0.0.0/8 localhost", Help: "hosts | connected directly"}},
	ExitStatus: []ExitStatus{{Code: "0", Meaning: "success"}, {Code: "128+N", Meaning: "killed by signal N"}},
	Examples:   []Example{{Text: "Set a host", Command: "tp env set PROXY_HOST=example.net"}},
}

func groffText(t *testing.T, page Page) string {
	t.Helper()
	if _, err := exec.LookPath("groff"); err != nil {
		t.Fatal("rendering man pages needs groff: apt-get install groff-base")
	}
	path := filepath.Join(t.TempDir(), page.FileName())
	if err := os.WriteFile(path, []byte(page.Text), 0o644); err != nil {
		t.Fatal(err)
	}
	var stderr bytes.Buffer
	cmd := exec.Command("groff", "-t", "-man", "-ww", "-z", path)
	cmd.Stderr = &stderr
	if err := cmd.Run(); err != nil || stderr.Len() > 0 {
		t.Errorf("groff -ww %s: %v\n%s\n%s", page.FileName(), err, stderr.String(), page.Text)
	}
	out, err := exec.Command("groff", "-t", "-man", "-Tutf8", "-P-cbou", path).Output()
	if err != nil {
		t.Fatal(err)
	}
	return string(out)
}

func TestPagesRenderTrickyTextAsWritten(t *testing.T) {
	pages := Pages(trickyApp(), trickyOptions)
	var names []string
	for _, p := range pages {
		names = append(names, p.FileName())
	}
	if !slices.Equal(names, []string{"tp.1", "tp-env.1"}) {
		t.Fatalf("pages %q, want tp.1 and tp-env.1 (no page for a hidden command)", names)
	}
	text := groffText(t, pages[0])
	// The example keeps its continuation line indented two more columns than its first.
	lines := strings.Split(text, "\n")
	i := slices.IndexFunc(lines, func(l string) bool { return strings.HasSuffix(l, "tp env set \\") })
	if i < 0 || i+1 == len(lines) || indent(lines[i+1]) != indent(lines[i])+2 {
		t.Errorf("the indented example lost its shape:\n%s", text)
	}
	flat := strings.Join(strings.Fields(text), " ")
	for _, want := range []string{
		".suffix entries match names", // not swallowed as a roff request
		`A backslash \n stays, "quotes" too, and 'single' ones.`,
		"--device NAME, -d NAME", // placeholder from the backquoted word
		"the NAME of the device. Default: local.",
		"--from-file FILE",
		"tp env set [options] KEY=VALUE...",
		"hosts | connected directly",
		"killed by signal N",
		"tp env set PROXY_HOST=example.net",
		"tp-env(1)",
	} {
		if !strings.Contains(flat, want) {
			t.Errorf("tp(1) does not show %q:\n%s", want, text)
		}
	}
	for _, unwanted := range []string{"secret", "hidden", "`"} {
		if strings.Contains(text, unwanted) {
			t.Errorf("tp(1) shows %q", unwanted)
		}
	}
	if env := groffText(t, pages[1]); !strings.Contains(env, "tp-env - configure") ||
		!strings.Contains(env, "tp(1)") || strings.Contains(env, "ENVIRONMENT") {
		t.Errorf("tp-env(1): want its own NAME line and a reference to tp(1), and the variables only in tp(1):\n%s", env)
	}
}

func TestMarkdownMatchesTheTree(t *testing.T) {
	md := Markdown(trickyApp(), trickyOptions, "make docs")
	for _, want := range []string{
		"Regenerate with `make docs`",
		"### tp env set",
		"- [`tp env set`](#tp-env-set): set a variable",
		"| `--device NAME`, `-d NAME` | the NAME of the device. Default: `local`. |",
		"| `PROXY_LOCAL` | `10.0.0.0/8 localhost` | hosts \\| connected directly. |",
		"```\ntp env set PROXY_LOCAL='.example.net 10.0.0.0/8'\n\ntp env set \\\n  A=1\n```",
	} {
		if !strings.Contains(md, want) {
			t.Errorf("markdown lacks %q:\n%s", want, md)
		}
	}
	if strings.Contains(md, "v9.9.9") {
		t.Error("markdown shows the version; the committed reference would change with every build")
	}
}

func indent(s string) int { return len(s) - len(strings.TrimLeft(s, " ")) }
