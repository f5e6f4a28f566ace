//go:build linux

package testpty

import (
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// waitTimeout is how long WaitFor waits for its text.
const waitTimeout = 20 * time.Second

// Terminal is the master side of a pseudo-terminal with a command running on its slave
// side, and what the command has written to it so far.
type Terminal struct {
	t      testing.TB
	master *os.File
	output chan string
	done   chan struct{}
	seen   strings.Builder
}

// Start runs cmd on a new pseudo-terminal: the terminal is its stdin, stdout and stderr,
// and, in a session of its own, its controlling terminal, so that cmd is in the terminal's
// foreground process group as under an interactive shell. Other fields of cmd.SysProcAttr
// are kept. At the end of the test cmd is killed and the terminal closed.
func Start(t testing.TB, cmd *exec.Cmd) *Terminal {
	t.Helper()
	master, slave := openPTY(t)
	term := &Terminal{t: t, master: master, output: make(chan string, 64), done: make(chan struct{})}
	t.Cleanup(func() {
		close(term.done)
		master.Close()
	})
	cmd.Stdin, cmd.Stdout, cmd.Stderr = slave, slave, slave
	if cmd.SysProcAttr == nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{}
	}
	cmd.SysProcAttr.Setsid, cmd.SysProcAttr.Setctty, cmd.SysProcAttr.Ctty = true, true, 0
	err := cmd.Start()
	slave.Close()
	if err != nil {
		t.Fatalf("start %s on a terminal: %v", cmd.Path, err)
	}
	t.Cleanup(func() { cmd.Process.Kill() })
	go term.read()
	return term
}

// read passes what the command writes to the terminal on to WaitFor, until the terminal
// closes or the test ends.
func (term *Terminal) read() {
	defer close(term.output)
	buf := make([]byte, 4096)
	for {
		n, err := term.master.Read(buf)
		if n > 0 {
			select {
			case term.output <- string(buf[:n]):
			case <-term.done:
				return
			}
		}
		if err != nil {
			return
		}
	}
}

// WaitFor waits until s is in the terminal's output, and fails the test if the terminal
// closes first or s has not come within 20 seconds.
func (term *Terminal) WaitFor(s string) {
	term.t.Helper()
	deadline := time.After(waitTimeout)
	for !strings.Contains(term.seen.String(), s) {
		select {
		case chunk, ok := <-term.output:
			if !ok {
				term.t.Fatalf("terminal closed before %q; output %q", s, term.seen.String())
			}
			term.seen.WriteString(chunk)
		case <-deadline:
			term.t.Fatalf("no %q on the terminal; output %q", s, term.seen.String())
		}
	}
}

// Write types b on the terminal, as a user at its keyboard: []byte{3} is a Ctrl-C.
func (term *Terminal) Write(b []byte) {
	term.t.Helper()
	if _, err := term.master.Write(b); err != nil {
		term.t.Fatalf("write %q to the terminal: %v", b, err)
	}
}

// Output is what the command has written to the terminal, up to the last WaitFor.
func (term *Terminal) Output() string { return term.seen.String() }

// openPTY returns the two ends of a new pseudo-terminal.
func openPTY(t testing.TB) (master, slave *os.File) {
	t.Helper()
	master, err := os.OpenFile("/dev/ptmx", os.O_RDWR|syscall.O_NOCTTY, 0)
	if err != nil {
		t.Fatalf("open /dev/ptmx (this test needs pseudo-terminals): %v", err)
	}
	if err := unix.IoctlSetPointerInt(int(master.Fd()), unix.TIOCSPTLCK, 0); err != nil {
		master.Close()
		t.Fatalf("unlock the pseudo-terminal: %v", err)
	}
	n, err := unix.IoctlGetInt(int(master.Fd()), unix.TIOCGPTN)
	if err != nil {
		master.Close()
		t.Fatalf("number of the pseudo-terminal: %v", err)
	}
	slave, err = os.OpenFile("/dev/pts/"+strconv.Itoa(n), os.O_RDWR|syscall.O_NOCTTY, 0)
	if err != nil {
		master.Close()
		t.Fatalf("open the pseudo-terminal's slave side: %v", err)
	}
	return master, slave
}
