package completions

import (
	"embed"
	"fmt"
	"strings"
)

// Shells are the shells that Script writes completion scripts for.
var Shells = []string{"bash", "zsh", "fish", "powershell"}

//go:embed scripts
var scripts embed.FS

// Script returns the completion script for shell, for a program installed as prog. The script
// asks prog itself for candidates, so it stays right as commands are added.
func Script(shell, prog string) (string, error) {
	text, err := scripts.ReadFile("scripts/" + shell)
	if err != nil {
		return "", fmt.Errorf("no completion script for shell %q: choose one of %s",
			shell, strings.Join(Shells, ", "))
	}
	// Shell function names take no "-".
	fn := strings.NewReplacer("-", "_", ".", "_").Replace(prog)
	return strings.NewReplacer("@PROG@", prog, "@FUNC@", fn).Replace(string(text)), nil
}

// Help returns the installation instructions for every shell, for `completion --help`.
func Help(prog string) string {
	return strings.NewReplacer("@PROG@", prog).Replace(help)
}

const help = `Print a script that makes @PROG@ complete commands, flags, device names, variable names
and the accepted values of variables in your shell.

Installed with "make install" or from a package, @PROG@ completes in bash, zsh and fish
already. Otherwise, set it up for your shell as below, then start a new shell.

bash needs the bash-completion package. Add this line to ~/.bashrc:

	eval "$(@PROG@ completion bash)"

zsh: write the script into a directory on $fpath, such as:

	@PROG@ completion zsh > /usr/local/share/zsh/site-functions/_@PROG@

and make sure that ~/.zshrc runs compinit:

	autoload -U compinit && compinit

fish:

	@PROG@ completion fish > ~/.config/fish/completions/@PROG@.fish

PowerShell 7.3 or later: add this line to the file that $PROFILE names:

	Invoke-Expression -Command $(@PROG@ completion powershell | Out-String)`
