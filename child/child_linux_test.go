//go:build linux

package child

import (
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// openPTY returns the two ends of a new pseudo-terminal.
func openPTY(t *testing.T) (master, slave *os.File) {
	t.Helper()
	master, err := os.OpenFile("/dev/ptmx", os.O_RDWR|syscall.O_NOCTTY, 0)
	if err != nil {
		t.Fatalf("open /dev/ptmx (this test needs pseudo-terminals): %v", err)
	}
	if err := unix.IoctlSetPointerInt(int(master.Fd()), unix.TIOCSPTLCK, 0); err != nil {
		t.Fatal(err)
	}
	n, err := unix.IoctlGetInt(int(master.Fd()), unix.TIOCGPTN)
	if err != nil {
		t.Fatal(err)
	}
	slave, err = os.OpenFile("/dev/pts/"+strconv.Itoa(n), os.O_RDWR|syscall.O_NOCTTY, 0)
	if err != nil {
		t.Fatal(err)
	}
	return master, slave
}

// TestRunCtrlCReachesTheProgramOnce: a Ctrl-C on the terminal reaches the program from the
// terminal only, not a second time from Run.
func TestRunCtrlCReachesTheProgramOnce(t *testing.T) {
	master, slave := openPTY(t)
	defer master.Close()
	script := `n=0; trap 'n=$((n+1))' INT; echo ready; while [ $n -eq 0 ]; do sleep 0.01; done; sleep 0.5; echo "count=$n"`
	cmd := exec.Command(os.Args[0])
	args, _ := json.Marshal([]string{"sh", "-c", script})
	cmd.Env = append(os.Environ(), runArgsVar+"="+string(args))
	cmd.Stdin, cmd.Stdout, cmd.Stderr = slave, slave, slave
	// A session of its own with the terminal as controlling terminal: Run is in the
	// terminal's foreground process group, as under an interactive shell.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true, Setctty: true, Ctty: 0}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	slave.Close()
	defer cmd.Process.Kill()

	output := make(chan string, 64)
	go func() {
		buf := make([]byte, 4096)
		for {
			n, err := master.Read(buf)
			if n > 0 {
				output <- string(buf[:n])
			}
			if err != nil {
				close(output)
				return
			}
		}
	}()
	var seen strings.Builder
	waitFor := func(s string) {
		deadline := time.After(20 * time.Second)
		for !strings.Contains(seen.String(), s) {
			select {
			case chunk, ok := <-output:
				if !ok {
					t.Fatalf("terminal closed before %q; output %q", s, seen.String())
				}
				seen.WriteString(chunk)
			case <-deadline:
				t.Fatalf("no %q on the terminal; output %q", s, seen.String())
			}
		}
	}
	waitFor("ready")
	master.Write([]byte{3}) // Ctrl-C
	waitFor("count=")
	waitFor("\n")
	if !strings.Contains(seen.String(), "count=1") {
		t.Fatalf("the program saw Ctrl-C more than once or not at all: %q", seen.String())
	}
	if err := cmd.Wait(); err != nil {
		t.Fatalf("Run exited with %v after the program ended normally; output %q", err, seen.String())
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
