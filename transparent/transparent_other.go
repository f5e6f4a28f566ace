//go:build !linux

package transparent

import (
	"os/exec"
	"runtime"
)

// Runner is a transparent run: Linux only.
type Runner struct{}

func notLinux() error {
	return &UnsupportedError{Why: "it needs Linux network namespaces, and this is " + runtime.GOOS,
		Fix: "run without --transparent (programs that read proxy variables still use the tunnel)"}
}

// New returns an error on this system: transparent mode is Linux only.
func New(cfg Config) (*Runner, error) { return nil, notLinux() }

// Start returns an error on this system.
func (r *Runner) Start(cmd *exec.Cmd) error { return notLinux() }

// Close does nothing on this system.
func (r *Runner) Close() error { return nil }

// Init is the namespace's first process: it does not exist on this system.
func Init(args []string) int {
	println("tessel-proxy: " + notLinux().Error())
	return 125
}
