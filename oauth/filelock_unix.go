//go:build unix

package oauth

import (
	"os"
	"syscall"
)

// lockDir holds an exclusive advisory lock on directory dir until unlock is called, so that
// two processes updating the credentials file in it (a login and a refresh, say) do not lose
// each other's change. Locking the directory leaves no lock file behind.
func lockDir(dir string) (unlock func(), err error) {
	f, err := os.Open(dir)
	if err != nil {
		return nil, err
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX); err != nil {
		f.Close()
		return nil, err
	}
	return func() {
		_ = syscall.Flock(int(f.Fd()), syscall.LOCK_UN)
		f.Close()
	}, nil
}
