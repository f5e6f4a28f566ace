package deviceenv

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// shellValues are values that a shell would run, expand or split if the env file quoted them
// carelessly: a user who sources the file must get each value as it is, and run nothing.
var shellValues = []string{
	"`touch $MARK`", "it's `touch $MARK`", "$(touch $MARK)", "it's $(touch $MARK)",
	"it's \"$(touch $MARK)\" `touch $MARK`", `it's $MARK`, "it's ${MARK}", "it's \\`touch $MARK\\`",
	"it's\nmultiline `touch $MARK`\n", `it's \$MARK`, "it's ; touch $MARK", "x'' `touch $MARK` ",
}

// TestEnvFileSourcedByShell sources the env file in the shells users have (sh = dash here,
// bash, BusyBox sh) and checks that every variable holds exactly the value written, and
// that nothing in a value ran.
func TestEnvFileSourcedByShell(t *testing.T) {
	vars := map[string]string{}
	for i, v := range append(append([]string{}, trickyValues...), shellValues...) {
		if strings.Contains(v, "\r") {
			continue // a shell's double quotes cannot hold a carriage return; dotenv's \r is for dotenv readers
		}
		if _, err := QuoteValue(v); err != nil {
			continue // refused values are checked in TestEnvRoundTrip
		}
		vars[keyFor(i)] = v
	}
	text, err := FormatEnv(vars)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	envPath := filepath.Join(dir, "env")
	if err := os.WriteFile(envPath, text, 0o600); err != nil {
		t.Fatal(err)
	}
	mark := filepath.Join(dir, "ran")

	shells := [][]string{{"sh"}, {"bash", "--posix"}, {"busybox", "sh"}}
	for _, sh := range shells {
		if _, err := exec.LookPath(sh[0]); err != nil {
			t.Fatalf("%s is not installed: run scripts/install-deps.sh", sh[0])
		}
		t.Run(strings.Join(sh, " "), func(t *testing.T) {
			for k, want := range vars {
				// The value comes back through a file, byte for byte (command
				// substitution would strip trailing newlines).
				out := filepath.Join(t.TempDir(), "value")
				cmd := exec.Command(sh[0], append(sh[1:], "-c", `. "$1" && printf %s "$`+k+`" > "$2"`, "sh", envPath, out)...)
				cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "MARK=" + mark}
				if msg, err := cmd.CombinedOutput(); err != nil {
					t.Fatalf("source the env file: %v\n%s\nfile:\n%s", err, msg, text)
				}
				got, err := os.ReadFile(out)
				if err != nil {
					t.Fatal(err)
				}
				if string(got) != want {
					t.Errorf("%s: wrote %q, the shell read %q\nfile:\n%s", k, want, got, text)
				}
			}
			if _, err := os.Stat(mark); err == nil {
				t.Fatalf("sourcing the env file ran a command from a value\nfile:\n%s", text)
			}
		})
	}
}
