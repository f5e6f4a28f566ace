package testoidc

import (
	"os/exec"
	"syscall"
)

// procAttr puts the server in a process group of its own, and has the kernel kill it if the
// test binary dies first.
func procAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL, Setpgid: true}
}

// kill kills the server's process group: node and anything it started.
func kill(cmd *exec.Cmd) { _ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
