//go:build unix

package child

import (
	"os"
	"syscall"

	"golang.org/x/sys/unix"
)

// forwardedSignals reach the program as they reach this process.
var forwardedSignals = []os.Signal{
	syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP, syscall.SIGQUIT,
	syscall.SIGUSR1, syscall.SIGUSR2, syscall.SIGWINCH,
}

// terminalSignal are the signals a terminal itself sends (Ctrl-C, Ctrl-\, a resize).
var terminalSignal = map[os.Signal]bool{syscall.SIGINT: true, syscall.SIGQUIT: true, syscall.SIGWINCH: true}

// inTerminalForeground reports whether the first of files that is a terminal has this
// process's group as its foreground process group, which the program shares.
func inTerminalForeground(files ...any) bool {
	for _, x := range files {
		f, ok := x.(*os.File)
		if !ok {
			continue
		}
		pgrp, err := unix.IoctlGetInt(int(f.Fd()), unix.TIOCGPGRP)
		if err != nil {
			continue // not a terminal
		}
		return pgrp == unix.Getpgrp()
	}
	return false
}
