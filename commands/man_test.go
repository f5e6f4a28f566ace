package commands_test

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/tessel/tessel-proxy/commands"
	"github.com/tessel/tessel-proxy/proxyconfig"
	"github.com/urfave/cli/v2"
)

func genIO(out *bytes.Buffer) commands.IO {
	return commands.IO{In: strings.NewReader(""), Out: out, Err: out,
		LookupEnv: func(string) (string, bool) { return "", false }}
}

// genMain runs the program in-process and fails the test on a non-zero exit.
func genMain(t *testing.T, args ...string) string {
	t.Helper()
	var out bytes.Buffer
	if code := commands.Main(genIO(&out), append([]string{"tessel-proxy"}, args...)); code != 0 {
		t.Fatalf("tessel-proxy %s: exit %d: %s", strings.Join(args, " "), code, out.String())
	}
	return out.String()
}

// groff renders a page as man(1) does (tbl for the tables, all warnings on) and returns the
// text with overstrike removed.
func groff(t *testing.T, page string) string {
	t.Helper()
	if _, err := exec.LookPath("groff"); err != nil {
		t.Fatal("rendering man pages needs groff: apt-get install groff-base")
	}
	for _, dev := range []string{"-Tutf8", "-Tps"} {
		cmd := exec.Command("groff", "-t", "-man", "-ww", "-z", dev, page)
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		if err := cmd.Run(); err != nil || stderr.Len() > 0 {
			t.Errorf("groff %s %s: %v\n%s", dev, filepath.Base(page), err, stderr.String())
		}
	}
	out, err := exec.Command("groff", "-t", "-man", "-Tutf8", "-P-cbou", page).Output()
	if err != nil {
		t.Fatalf("groff %s: %v", page, err)
	}
	return string(out)
}

// visibleTree lists every visible command of the finished tree as "env set".
func visibleTree() []string {
	var out []string
	var walk func(prefix string, cmds []*cli.Command)
	walk = func(prefix string, cmds []*cli.Command) {
		for _, c := range cmds {
			if c.Hidden || c.Name == "help" {
				continue
			}
			out = append(out, prefix+c.Name)
			walk(prefix+c.Name+" ", c.Subcommands)
		}
	}
	walk("", commands.NewApp(genIO(&bytes.Buffer{})).Commands)
	return out
}

func TestManPagesRenderCleanlyAndCoverTheTree(t *testing.T) {
	dir := t.TempDir()
	genMain(t, "man", "--dir", dir)
	main := groff(t, filepath.Join(dir, "tessel-proxy.1"))
	// Rendering joins words with single spaces only in headings; compare on collapsed spaces.
	flat := strings.Join(strings.Fields(main), " ")

	for _, path := range visibleTree() {
		if !strings.Contains(flat, "tessel-proxy "+path) {
			t.Errorf("tessel-proxy(1) does not describe %q", "tessel-proxy "+path)
		}
		if top, _, _ := strings.Cut(path, " "); top == path {
			page := filepath.Join(dir, "tessel-proxy-"+path+".1")
			if _, err := os.Stat(page); err != nil {
				t.Errorf("no page for %q: %v", path, err)
				continue
			}
			text := strings.Join(strings.Fields(groff(t, page)), " ")
			if !strings.Contains(text, "tessel-proxy-"+path) || !strings.Contains(text, "tessel-proxy(1)") {
				t.Errorf("tessel-proxy-%s(1) lacks its name or a reference to tessel-proxy(1)", path)
			}
		}
	}
	for _, section := range []string{"NAME", "SYNOPSIS", "DESCRIPTION", "COMMANDS", "ENVIRONMENT",
		"EXIT STATUS", "EXAMPLES", "SEE ALSO"} {
		if !regexp.MustCompile(`(?m)^` + section + `$`).MatchString(main) {
			t.Errorf("tessel-proxy(1) has no %s section", section)
		}
	}
	env := main[strings.Index(main, "\nENVIRONMENT"):]
	for _, v := range proxyconfig.Variables {
		if !strings.Contains(env, v.Name) {
			t.Errorf("ENVIRONMENT does not list %s", v.Name)
		}
	}
	exit := strings.Join(strings.Fields(main[strings.Index(main, "\nEXIT STATUS"):]), " ")
	for _, code := range []string{"0 success", "1 a failure", "2 bad usage", "128+N", "125", "126", "127"} {
		if !strings.Contains(exit, code) {
			t.Errorf("EXIT STATUS does not mention %q", code)
		}
	}
}

func TestManPrintsTheMainPage(t *testing.T) {
	dir := t.TempDir()
	genMain(t, "man", "--dir", dir)
	want, err := os.ReadFile(filepath.Join(dir, "tessel-proxy.1"))
	if err != nil {
		t.Fatal(err)
	}
	if got := genMain(t, "man"); got != string(want) {
		t.Error("`man` printed a page other than the tessel-proxy.1 that `man --dir` writes")
	}
	// man(1) itself reads the page (through tbl), as a user would.
	if _, err := exec.LookPath("man"); err != nil {
		t.Fatal("reading the page needs man: apt-get install man-db")
	}
	cmd := exec.Command("man", "-l", filepath.Join(dir, "tessel-proxy.1"))
	cmd.Env = append(os.Environ(), "MANPAGER=cat", "PAGER=cat", "MANWIDTH=80")
	out, err := cmd.CombinedOutput()
	if err != nil || !strings.Contains(string(out), "PROXY_TRUSTED") {
		t.Errorf("man -l tessel-proxy.1: %v\n%s", err, out)
	}
}

func TestManRejectsBadUsage(t *testing.T) {
	for _, args := range [][]string{
		{"man", "--format", "html"},
		{"man", "--format", "markdown", "--dir", t.TempDir()},
		{"man", "extra"},
	} {
		var out bytes.Buffer
		if code := commands.Main(genIO(&out), append([]string{"tessel-proxy"}, args...)); code != commands.ExitUsage {
			t.Errorf("tessel-proxy %s: exit %d, want %d (%s)", strings.Join(args, " "), code, commands.ExitUsage, out.String())
		}
	}
}
