package testsshd

import "syscall"

// dieWithParent has the kernel kill sshd if the test binary dies first (a timeout panic skips
// Cleanup).
func dieWithParent() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
