// Package child starts and supervises the program that `tessel-proxy run` wraps: it starts
// the program, passes on the signals sent to run, leaves the terminal's own signals to the
// terminal, and turns how the program ended into an exit status, as env(1), timeout(1) and
// nice(1) do.
package child

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"os/signal"
	"syscall"
)

// Exit statuses for failures of the wrapper itself, as env(1), timeout(1) and nice(1) use
// them. Any other status is the program's own, or 128+N when signal N killed it.
const (
	ExitFailed        = 125 // the wrapper failed: configuration, proxy, token, a Started hook
	ExitNotExecutable = 126 // the program was found but could not be executed
	ExitNotFound      = 127 // the program was not found
)

// Options say which program to start and how.
type Options struct {
	// Program is a path, or a name looked up in this process's PATH. It is also the
	// program's argv[0], as a shell would set it.
	Program string
	Args    []string
	// Env is the program's whole environment, as KEY=VALUE (see ProxyEnv). nil is an
	// empty environment, not this process's.
	Env []string
	// Dir is the program's working directory; "" is this process's.
	Dir string

	Stdin          io.Reader
	Stdout, Stderr io.Writer

	// ExtraFiles are open files the program inherits, as file descriptors 3, 4, ... (not
	// on Windows).
	ExtraFiles []*os.File
	// SysProcAttr, when set, holds the OS-specific attributes to start the program with
	// (namespaces, UID and GID mappings, ...). Run passes it on unchanged. The terminal
	// rule of Run assumes the program stays in run's process group: attributes that give
	// it a group or a session of its own must make that group the terminal's foreground
	// one (Foreground), or the terminal's signals no longer reach it.
	SysProcAttr *syscall.SysProcAttr
	// Start, when set, starts the command in place of cmd.Start, to wrap the program in
	// something (transparent mode's namespaces). It leaves cmd started, with cmd.Process
	// the program's own process, or returns an error with nothing left running; Run then
	// returns ExitFailed with that error.
	Start func(cmd *exec.Cmd) error
	// Started, when set, is called with the program's process ID once it has started and
	// before Run waits for it. Signals that arrive meanwhile are held and passed on after
	// it returns. When it returns an error, the program is killed and Run returns
	// ExitFailed with that error.
	Started func(pid int) error
}

// Run starts the program, passes on to it the signals this process receives (INT, TERM,
// HUP, QUIT, USR1, USR2 and WINCH on Unix), waits for it to end, and returns the status to
// exit with: the program's own, 128+N when signal N killed it.
//
// When Stdin, Stdout or Stderr is a terminal whose foreground process group is this
// process's (which the program shares), INT, QUIT and WINCH are not passed on: the
// terminal has sent them to the program already, and a second copy would turn one Ctrl-C
// into two.
//
// A program that cannot be started gives ExitNotFound or ExitNotExecutable and an error
// that names it. When ctx is done before the program ends, the program is killed and Run
// returns its status with ctx's error.
func Run(ctx context.Context, o Options) (int, error) {
	path, err := exec.LookPath(o.Program)
	if err != nil {
		return startError(o.Program, err)
	}
	cmd := exec.Command(path, o.Args...)
	cmd.Args[0] = o.Program
	cmd.Env = o.Env
	if cmd.Env == nil {
		cmd.Env = []string{} // nil would mean this process's environment to os/exec
	}
	cmd.Dir = o.Dir
	cmd.Stdin, cmd.Stdout, cmd.Stderr = o.Stdin, o.Stdout, o.Stderr
	cmd.ExtraFiles = o.ExtraFiles
	cmd.SysProcAttr = o.SysProcAttr

	// Register before Start, so that a signal arriving in between is not lost.
	sigs := make(chan os.Signal, 8)
	signal.Notify(sigs, forwardedSignals...)
	defer signal.Stop(sigs)
	if o.Start != nil {
		if err := o.Start(cmd); err != nil {
			return ExitFailed, err
		}
	} else if err := cmd.Start(); err != nil {
		return startError(o.Program, err)
	}
	waited := make(chan struct{})
	go func() { cmd.Wait(); close(waited) }()
	if o.Started != nil {
		if err := o.Started(cmd.Process.Pid); err != nil {
			cmd.Process.Kill()
			<-waited
			return ExitFailed, err
		}
	}
	for {
		select {
		case sig := <-sigs:
			if terminalSignal[sig] && inTerminalForeground(o.Stdin, o.Stdout, o.Stderr) {
				continue
			}
			cmd.Process.Signal(sig)
		case <-ctx.Done():
			cmd.Process.Kill()
			<-waited
			return exitStatus(cmd.ProcessState), ctx.Err()
		case <-waited:
			return exitStatus(cmd.ProcessState), nil
		}
	}
}

// startError maps a failure to start the program to the status shells use.
func startError(program string, err error) (int, error) {
	if errors.Is(err, exec.ErrNotFound) || errors.Is(err, fs.ErrNotExist) {
		return ExitNotFound, fmt.Errorf("%s: program not found", program)
	}
	return ExitNotExecutable, fmt.Errorf("%s: cannot execute: %w", program, unwrapExec(err))
}

// unwrapExec strips the program name os/exec puts around the cause, which startError
// names itself.
func unwrapExec(err error) error {
	var ee *exec.Error
	if errors.As(err, &ee) {
		return ee.Err
	}
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}

// exitStatus turns how the program ended into the status to exit with.
func exitStatus(st *os.ProcessState) int {
	if st == nil { // waiting for the program failed: no status to pass on
		return ExitFailed
	}
	if ws, ok := st.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
		return 128 + int(ws.Signal())
	}
	return st.ExitCode()
}
