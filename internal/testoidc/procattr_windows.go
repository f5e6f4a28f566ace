package testoidc

import (
	"os/exec"
	"syscall"
)

// procAttr: Windows has no process groups to put the server in.
func procAttr() *syscall.SysProcAttr { return nil }

// kill kills the server process.
func kill(cmd *exec.Cmd) { _ = cmd.Process.Kill() }
