//go:build windows

package child

import "os"

// forwardedSignals reach the program as they reach this process. Windows delivers Ctrl-C
// to the whole console, the program included, so there is nothing to forward.
var forwardedSignals = []os.Signal{}

var terminalSignal = map[os.Signal]bool{}

func inTerminalForeground(files ...any) bool { return true }
