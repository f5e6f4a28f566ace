package completions_test

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/tessel/tessel-proxy/commands"
	"github.com/tessel/tessel-proxy/completions"
	"github.com/tessel/tessel-proxy/deviceenv"
	"github.com/tessel/tessel-proxy/proxyconfig"
	"github.com/urfave/cli/v2"
	"go.uber.org/goleak"
)

const prog = "tessel-proxy"

// binDir holds the program, built once for every shell test; home is the HOME the shells
// run with (it holds the device registry).
var binDir, home string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "completions-test-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	binDir = filepath.Join(dir, "bin")
	home = filepath.Join(dir, "home")
	build := exec.Command("go", "build", "-o", filepath.Join(binDir, prog), "github.com/tessel/tessel-proxy")
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "build tessel-proxy:", err)
		os.RemoveAll(dir)
		os.Exit(1)
	}
	if err := writeRegistry(home, testDevices); err != nil {
		fmt.Fprintln(os.Stderr, "write the device registry:", err)
		os.RemoveAll(dir)
		os.Exit(1)
	}
	goleak.VerifyTestMain(m, goleak.Cleanup(func(int) { os.RemoveAll(dir) }))
}

// testDevices are the devices in the test registry.
var testDevices = map[string]string{"kiosk": "ssh://pi@kiosk.example.net", "bench": "local"}

// compCase is one completion request: the command line up to the cursor, and candidates that
// must and must not be offered. Candidates are whole words as they end up on the line.
type compCase struct {
	line string
	want []string
	not  []string
}

// visible lists the commands of a tree that a user sees.
func visible(cmds []*cli.Command) []*cli.Command {
	var out []*cli.Command
	for _, c := range cmds {
		if !c.Hidden && c.Name != "help" {
			out = append(out, c)
		}
	}
	return out
}

// longFlags lists the visible long flag names of a command, as typed.
func longFlags(flags []cli.Flag) []string {
	out := []string{"--help"}
	for _, f := range flags {
		if v, ok := f.(cli.VisibleFlag); ok && !v.IsVisible() {
			continue
		}
		for _, n := range f.Names() {
			if len(n) > 1 && n != "help" {
				out = append(out, "--"+n)
			}
		}
	}
	return out
}

func takesValue(f cli.Flag) bool {
	d, ok := f.(cli.DocGenerationFlag)
	return ok && d.TakesValue()
}

func hasName(f cli.Flag, name string) bool { return slices.Contains(f.Names(), name) }

// treeCases asks, for every command of the finished tool: its name from a prefix, its
// subcommands, its flags, and device names after every --device.
func treeCases(t *testing.T) []compCase {
	app := commands.NewApp(commands.IO{In: strings.NewReader(""), Out: io.Discard, Err: io.Discard,
		LookupEnv: func(string) (string, bool) { return "", false }})
	devices := append(slices.Sorted(mapsKeys(testDevices)), deviceenv.LocalName)
	var cases []compCase
	var walk func(path string, cmds []*cli.Command)
	walk = func(path string, cmds []*cli.Command) {
		var names []string
		for _, c := range visible(cmds) {
			names = append(names, c.Name)
		}
		if len(names) > 0 {
			cases = append(cases, compCase{line: path + " ", want: names})
		}
		for _, c := range visible(cmds) {
			cases = append(cases, compCase{line: path + " " + c.Name[:len(c.Name)-1], want: []string{c.Name}})
			p := path + " " + c.Name
			cases = append(cases, compCase{line: p + " --", want: longFlags(c.Flags)})
			for _, f := range c.Flags {
				if hasName(f, "device") && takesValue(f) {
					cases = append(cases,
						compCase{line: p + " --device ", want: devices},
						compCase{line: p + " --device=", want: prefixed("--device=", devices)})
				}
			}
			walk(p, c.Subcommands)
		}
	}
	walk(prog, app.Commands)
	cases = append(cases, compCase{line: prog + " --", want: []string{"--help", "--version"}})

	// Values known at run time.
	find := func(path ...string) *cli.Command {
		cmds := app.Commands
		var c *cli.Command
		for _, name := range path {
			c = nil
			for _, cand := range cmds {
				if cand.HasName(name) {
					c = cand
				}
			}
			if c == nil {
				t.Errorf("command %q is not in the tree: the dynamic completions for it are untested",
					strings.Join(path, " "))
				return nil
			}
			cmds = c.Subcommands
		}
		return c
	}
	var names []string
	for _, v := range proxyconfig.Variables {
		names = append(names, v.Name)
	}
	if find("env", "get") != nil {
		cases = append(cases,
			compCase{line: prog + " env get ", want: names},
			compCase{line: prog + " env get PROXY_T", want: []string{"PROXY_TOKEN", "PROXY_TRUSTED"}, not: []string{"PROXY_HOST"}})
	}
	if find("env", "unset") != nil {
		cases = append(cases, compCase{line: prog + " env unset TM", want: []string{"TM_API_KEY"}})
	}
	if find("env", "set") != nil {
		cases = append(cases,
			compCase{line: prog + " env set ", want: prefixed("", suffixed(names, "="))},
			compCase{line: prog + " env set PROXY_TR", want: []string{"PROXY_TRUSTED="}},
			compCase{line: prog + " env set PROXY_TRUSTED=",
				want: prefixed("PROXY_TRUSTED=", []string{"1", "0", "true", "false", "yes", "no"})},
			compCase{line: prog + " env set PROXY_TRUSTED=t", want: []string{"PROXY_TRUSTED=true"},
				not: []string{"PROXY_TRUSTED=1", "PROXY_TRUSTED=false"}},
			compCase{line: prog + " env set PROXY_HOST=x PROXY_IDLE=I", want: []string{"PROXY_IDLE=Infinity"}})
	}
	if dev := find("device"); dev != nil {
		for _, c := range visible(dev.Subcommands) {
			if c.Name != "add" && c.Name != "list" && c.Name != "ls" {
				cases = append(cases, compCase{line: prog + " device " + c.Name + " ", want: devices})
			}
		}
	}
	if find("completion") != nil {
		cases = append(cases, compCase{line: prog + " completion ", want: completions.Shells})
	}
	if find("man") != nil {
		cases = append(cases,
			compCase{line: prog + " man --format ", want: []string{"roff", "markdown"}},
			compCase{line: prog + " man --format=m", want: []string{"--format=markdown"}, not: []string{"--format=roff"}})
	}
	return cases
}

func mapsKeys(m map[string]string) func(func(string) bool) {
	return func(yield func(string) bool) {
		for k := range m {
			if !yield(k) {
				return
			}
		}
	}
}

func prefixed(prefix string, words []string) []string {
	out := make([]string, len(words))
	for i, w := range words {
		out[i] = prefix + w
	}
	return out
}

func suffixed(words []string, suffix string) []string {
	out := make([]string, len(words))
	for i, w := range words {
		out[i] = w + suffix
	}
	return out
}

// shellEnv is the environment the shells run in: the built program first on PATH, the test
// HOME with its device registry.
func shellEnv() []string {
	return append(os.Environ(),
		"PATH="+binDir+string(os.PathListSeparator)+os.Getenv("PATH"),
		"HOME="+home,
		"XDG_CONFIG_HOME="+filepath.Join(home, ".config"),
	)
}

func need(t *testing.T, tool, pkg string) string {
	t.Helper()
	path, err := exec.LookPath(tool)
	if err != nil {
		t.Fatalf("%s is needed for this test: apt-get install %s (scripts/install-deps.sh does)", tool, pkg)
	}
	return path
}

// runShell runs script in a shell with one case line a line on its stdin, and returns one line
// of output a case: the candidates, separated by \x1f.
func runShell(t *testing.T, argv []string, script string, cases []compCase, scriptArgs ...string) [][]string {
	t.Helper()
	dir := t.TempDir()
	scriptPath := filepath.Join(dir, "harness")
	if err := os.WriteFile(scriptPath, []byte(script), 0o644); err != nil {
		t.Fatal(err)
	}
	var in bytes.Buffer
	for _, c := range cases {
		in.WriteString(c.line + "\n")
	}
	cmd := exec.Command(argv[0], append(append(argv[1:], scriptPath), scriptArgs...)...)
	cmd.Env = shellEnv()
	cmd.Dir = dir
	cmd.Stdin = &in
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("%s: %v\nstderr:\n%s", argv[0], err, stderr.String())
	}
	if stderr.Len() > 0 {
		t.Errorf("%s wrote to stderr while loading or completing:\n%s", argv[0], stderr.String())
	}
	lines := strings.Split(strings.TrimSuffix(stdout.String(), "\n"), "\n")
	if len(lines) != len(cases) {
		t.Fatalf("%s answered %d cases of %d; output:\n%s", argv[0], len(lines), len(cases), stdout.String())
	}
	out := make([][]string, len(lines))
	for i, l := range lines {
		for _, w := range strings.Split(l, "\x1f") {
			if w != "" {
				out[i] = append(out[i], w)
			}
		}
	}
	return out
}

func check(t *testing.T, shell string, cases []compCase, got [][]string) {
	t.Helper()
	for i, c := range cases {
		var missing, unwanted []string
		for _, w := range c.want {
			if !slices.Contains(got[i], w) {
				missing = append(missing, w)
			}
		}
		for _, w := range c.not {
			if slices.Contains(got[i], w) {
				unwanted = append(unwanted, w)
			}
		}
		if len(missing) > 0 || len(unwanted) > 0 {
			t.Errorf("%s: %q<TAB> offered %q; missing %q, should not offer %q",
				shell, c.line, got[i], missing, unwanted)
		}
	}
}

const bashHarness = `
[[ $1 == --without-bash-completion ]] || source /usr/share/bash-completion/bash_completion
eval "$(tessel-proxy completion bash)"
fn=$(complete -p tessel-proxy | sed -n 's/.* -F \([^ ]*\) .*/\1/p')
[[ -n $fn ]] || { echo "completion bash registered no function for tessel-proxy" >&2; exit 1; }

# compopt works only while readline runs a completion; the options it sets are not checked.
compopt() { :; }

# split_line sets COMP_WORDS and COMP_CWORD as readline does: words end at blanks, and = and
# : are words of their own (they are in COMP_WORDBREAKS).
split_line() {
    local line=$1 word= c i
    COMP_WORDS=()
    for ((i = 0; i < ${#line}; i++)); do
        c=${line:i:1}
        case $c in
        ' ') [[ -n $word ]] && COMP_WORDS+=("$word"); word= ;;
        [=:]) [[ -n $word ]] && COMP_WORDS+=("$word"); COMP_WORDS+=("$c"); word= ;;
        *) word+=$c ;;
        esac
    done
    if [[ -n $word || $line == *' ' ]]; then COMP_WORDS+=("$word"); fi
    COMP_CWORD=$((${#COMP_WORDS[@]} - 1))
}

while IFS= read -r line; do
    split_line "$line"
    COMP_LINE=$line
    COMP_POINT=${#line}
    COMPREPLY=()
    "$fn" tessel-proxy "${COMP_WORDS[COMP_CWORD]}" "${COMP_WORDS[COMP_CWORD-1]}"
    # bash puts a reply in place of the part of the word after its last = or :.
    cur=${line##* }
    prefix=
    [[ $cur == *[=:]* ]] && prefix=${cur%"${cur##*[=:]}"}
    for r in "${COMPREPLY[@]}"; do printf '%s\x1f' "$prefix$r"; done
    printf '\n'
done
`

func TestBashCompletesEveryCommand(t *testing.T) {
	bash := need(t, "bash", "bash")
	if _, err := os.Stat("/usr/share/bash-completion/bash_completion"); err != nil {
		t.Fatal("bash completion needs the bash-completion package: apt-get install bash-completion")
	}
	cases := treeCases(t)
	check(t, "bash", cases, runShell(t, []string{bash, "--norc", "--noprofile"}, bashHarness, cases))
}

// Without the bash-completion package (macOS's bash, a minimal container) the script still
// completes commands and flags from bash's own COMP_WORDS.
func TestBashCompletesWithoutTheBashCompletionPackage(t *testing.T) {
	bash := need(t, "bash", "bash")
	cases := []compCase{
		{line: prog + " en", want: []string{"env"}, not: []string{"serve"}},
		{line: prog + " env ", want: []string{"set", "get", "list", "unset"}},
		{line: prog + " env list --", want: []string{"--device", "--help"}},
		{line: prog + " completion ", want: completions.Shells},
	}
	got := runShell(t, []string{bash, "--norc", "--noprofile"}, bashHarness, cases, "--without-bash-completion")
	check(t, "bash without bash-completion", cases, got)
}

func TestBashCompletesTheProgramAfterDoubleDash(t *testing.T) {
	bash := need(t, "bash", "bash")
	need(t, "curl", "curl")
	// After "--" the words are a program and its arguments: the program is completed as a
	// command, and tessel-proxy is not asked (it would run the command instead).
	cases := []compCase{{line: prog + " run -- cur", want: []string{"curl"}}}
	check(t, "bash", cases, runShell(t, []string{bash, "--norc", "--noprofile"}, bashHarness, cases))
}

// run's arguments are a program and its arguments: the program's name, then its own
// completion (curl's, from bash-completion), as if the line began with it.
func TestBashCompletesTheProgramThatRunRuns(t *testing.T) {
	bash := need(t, "bash", "bash")
	need(t, "curl", "curl")
	cases := []compCase{
		{line: prog + " run cur", want: []string{"curl"}},
		{line: prog + " run --debug cur", want: []string{"curl"}},
		{line: prog + " run curl --verb", want: []string{"--verbose"}},
	}
	check(t, "bash", cases, runShell(t, []string{bash, "--norc", "--noprofile"}, bashHarness, cases))
}

const zshHarness = `
autoload -U compinit && compinit -u -D
source <(tessel-proxy completion zsh)
fn=$_comps[tessel-proxy]
[[ -n $fn ]] || { print -u2 "completion zsh registered no function for tessel-proxy"; exit 1 }

# Stand-ins for the completion builtins, which only work inside a completion widget: they
# record the candidates the function offers.
typeset -ga out
_describe() {
  local x n
  for x in "${(@P)${@[-1]}}"; do
    n=${x//\\:/$'\0'}; n=${n%%:*}; out+=("${n//$'\0'/:}")
  done
}
compadd() { while [[ $1 != -- ]]; do shift; done; shift; out+=("$@") }
_files() { out+=(__files__) }
_normal() { out+=("__normal__ ${words[*]}") }

while IFS= read -r line; do
  out=()
  words=("${(@z)line}")
  [[ $line == *' ' ]] && words+=('')
  CURRENT=${#words}
  cur=${words[CURRENT]}
  $fn
  # compadd and _describe leave matching to zsh; do what it would with the word under the cursor.
  shown=()
  for x in $out; do
    [[ $x == __* || $x == "$cur"* ]] && shown+=("$x")
  done
  print -r -- "${(pj:\x1f:)shown}"
done
`

func TestZshCompletesEveryCommand(t *testing.T) {
	zsh := need(t, "zsh", "zsh")
	cases := treeCases(t)
	// After run, or after --, the line from the program on is zsh's own to complete.
	cases = append(cases,
		compCase{line: prog + " run cur", want: []string{"__normal__ cur"}},
		compCase{line: prog + " run curl --verb", want: []string{"__normal__ curl --verb"}},
		compCase{line: prog + " run -- curl -", want: []string{"__normal__ curl -"}})
	check(t, "zsh", cases, runShell(t, []string{zsh, "-f"}, zshHarness, cases))
}

func TestZshAutoloadsFromFpath(t *testing.T) {
	zsh := need(t, "zsh", "zsh")
	dir := t.TempDir()
	script, err := completions.Script("zsh", prog)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "_"+prog), []byte(script), 0o644); err != nil {
		t.Fatal(err)
	}
	// Installed as _tessel-proxy on $fpath (as make install does), compinit must find it
	// through its #compdef line.
	cmd := exec.Command(zsh, "-f", "-c", `fpath=("$1" $fpath); autoload -U compinit && compinit -u -D; print -r -- "$_comps[tessel-proxy]"`, "zsh", dir)
	cmd.Env = shellEnv()
	out, err := cmd.CombinedOutput()
	if err != nil || strings.TrimSpace(string(out)) != "_"+prog {
		t.Fatalf("compinit with the script on $fpath: completion function %q (err %v), want _%s", out, err, prog)
	}
}

const fishHarness = `
tessel-proxy completion fish | source
while read -l line
    for c in (complete -C"$line")
        printf '%s\x1f' (string split -f1 \t -- $c)
    end
    printf '\n'
end
`

func TestFishCompletesEveryCommand(t *testing.T) {
	fish := need(t, "fish", "fish")
	cases := treeCases(t)
	cases = append(cases,
		compCase{line: prog + " run -- cur", want: []string{"curl"}},
		compCase{line: prog + " run cur", want: []string{"curl"}},
		compCase{line: prog + " run curl --verb", want: []string{"--verbose"}})
	check(t, "fish", cases, runShell(t, []string{fish}, fishHarness, cases))
}

func TestScriptsForEveryShell(t *testing.T) {
	for _, sh := range completions.Shells {
		s, err := completions.Script(sh, prog)
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(s, completions.RequestFlag) || strings.Contains(s, "@PROG@") {
			t.Errorf("%s script does not ask %s for candidates, or kept a placeholder:\n%s", sh, prog, s)
		}
	}
	if _, err := completions.Script("tcsh", prog); err == nil || !strings.Contains(err.Error(), "bash, zsh, fish, powershell") {
		t.Errorf("Script(tcsh) = %v, want an error that lists the shells", err)
	}
}
