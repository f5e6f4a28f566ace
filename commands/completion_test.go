package commands_test

import (
	"bytes"
	"strings"
	"testing"

	"github.com/tessel/tessel-proxy/commands"
)

func TestCompletionPrintsTheScriptForTheShellNamed(t *testing.T) {
	for shell, marker := range map[string]string{
		"bash":       "complete -o default -o bashdefault -F _tessel_proxy tessel-proxy",
		"zsh":        "#compdef tessel-proxy",
		"fish":       "complete -c tessel-proxy",
		"powershell": "Register-ArgumentCompleter -Native -CommandName 'tessel-proxy'",
	} {
		if out := genMain(t, "completion", shell); !strings.Contains(out, marker) {
			t.Errorf("completion %s does not contain %q:\n%s", shell, marker, out)
		}
	}
}

func TestCompletionNeedsOneKnownShell(t *testing.T) {
	for _, args := range [][]string{{"completion"}, {"completion", "tcsh"}, {"completion", "bash", "zsh"}} {
		var out bytes.Buffer
		code := commands.Main(genIO(&out), append([]string{"tessel-proxy"}, args...))
		if code != commands.ExitUsage || !strings.Contains(out.String(), "bash, zsh, fish, powershell") {
			t.Errorf("tessel-proxy %s: exit %d, %q; want exit %d and the list of shells",
				strings.Join(args, " "), code, out.String(), commands.ExitUsage)
		}
	}
}

func TestCompletionHelpSaysHowToInstall(t *testing.T) {
	out := genMain(t, "completion", "--help")
	for _, want := range []string{`eval "$(tessel-proxy completion bash)"`, "_tessel-proxy", "compinit",
		"~/.config/fish/completions/tessel-proxy.fish", "$PROFILE"} {
		if !strings.Contains(out, want) {
			t.Errorf("completion --help does not say %q:\n%s", want, out)
		}
	}
}
