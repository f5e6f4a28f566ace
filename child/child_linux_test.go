//go:build linux

package child

import (
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"

	"github.com/tessel/tessel-proxy/internal/testpty"
)

// TestRunCtrlCReachesTheProgramOnce: a Ctrl-C on the terminal reaches the program from the
// terminal only, not a second time from Run.
func TestRunCtrlCReachesTheProgramOnce(t *testing.T) {
	script := `n=0; trap 'n=$((n+1))' INT; echo ready; while [ $n -eq 0 ]; do sleep 0.01; done; sleep 0.5; echo "count=$n"`
	cmd := exec.Command(os.Args[0])
	args, _ := json.Marshal([]string{"sh", "-c", script})
	cmd.Env = append(os.Environ(), runArgsVar+"="+string(args))
	// Run is in the terminal's foreground process group, as under an interactive shell.
	term := testpty.Start(t, cmd)
	term.WaitFor("ready")
	term.Write([]byte{3}) // Ctrl-C
	term.WaitFor("count=")
	term.WaitFor("\n")
	if !strings.Contains(term.Output(), "count=1") {
		t.Fatalf("the program saw Ctrl-C more than once or not at all: %q", term.Output())
	}
	if err := cmd.Wait(); err != nil {
		t.Fatalf("Run exited with %v after the program ended normally; output %q", err, term.Output())
	}
}

// TestRunProcessAttributes: Program is argv[0] as given, and SysProcAttr reaches the
// program (here a process group of its own), as namespaces will.
func TestRunProcessAttributes(t *testing.T) {
	// Field 5 of /proc/PID/stat is the process group; $$ is the shell's pid.
	status, out, err := run(t, context.Background(), Options{Program: "sh",
		Args:        []string{"-c", `tr '\0' ' ' < /proc/$$/cmdline; echo; echo $$; cut -d' ' -f5 /proc/$$/stat`},
		SysProcAttr: &syscall.SysProcAttr{Setpgid: true}})
	lines := strings.Split(out, "\n")
	if status != 0 || err != nil || len(lines) < 3 {
		t.Fatalf("status %d, err %v, output %q", status, err, out)
	}
	if !strings.HasPrefix(lines[0], "sh -c ") {
		t.Errorf("argv %q, want it to start with the program as given: sh -c", lines[0])
	}
	if lines[1] != lines[2] {
		t.Errorf("the program's pid %s is not its process group %s: SysProcAttr was not used", lines[1], lines[2])
	}
}
