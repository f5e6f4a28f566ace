//go:build linux

package testnetns

import (
	"fmt"
	"runtime"

	"golang.org/x/sys/unix"
)

// Do runs f in network namespace ns (/run/netns/ns) and returns its error, or why the
// namespace could not be entered. f runs on a goroutine of its own, on an OS thread that
// only it uses: sockets f opens stay in ns, and nothing else runs in ns.
func Do(ns string, f func() error) error {
	errc := make(chan error, 1)
	go func() {
		// Never unlocked: the thread, moved into ns, ends with this goroutine.
		runtime.LockOSThread()
		fd, err := unix.Open("/run/netns/"+ns, unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			errc <- fmt.Errorf("open network namespace %s: %w", ns, err)
			return
		}
		defer unix.Close(fd)
		if err := unix.Setns(fd, unix.CLONE_NEWNET); err != nil {
			errc <- fmt.Errorf("enter network namespace %s (run the tests as root): %w", ns, err)
			return
		}
		errc <- f()
	}()
	return <-errc
}
