//go:build unix && !linux

package testoidc

import (
	"os/exec"
	"syscall"
)

// procAttr puts the server in a process group of its own.
func procAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true}
}

// kill kills the server's process group: node and anything it started.
func kill(cmd *exec.Cmd) { _ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
