package testoidc

import "syscall"

// procAttr puts the server in a process group of its own, and has the kernel kill it if the
// test binary dies first.
func procAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL, Setpgid: true}
}
