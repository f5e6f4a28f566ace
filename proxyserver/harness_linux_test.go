//go:build linux

package proxyserver

import (
	"context"
	"fmt"
	"net"
	"runtime"
	"syscall"
	"testing"
)

// isolatedDialer dials from a thread moved into a network namespace of its own, which has
// no interface up and no route: a real dial that fails with "network is unreachable"
// without a packet leaving anything. It needs root (CAP_SYS_ADMIN), as the tests run in CI.
type isolatedDialer struct{ t testing.TB }

func (d isolatedDialer) DialContext(ctx context.Context, network, address string) (net.Conn, error) {
	type result struct {
		conn net.Conn
		err  error
	}
	ch := make(chan result, 1)
	go func() {
		// Never unlocked: the thread, and the namespace with it, ends with this goroutine.
		runtime.LockOSThread()
		if err := syscall.Unshare(syscall.CLONE_NEWNET); err != nil {
			d.t.Errorf("unshare a network namespace (run the tests as root): %v", err)
			ch <- result{err: err}
			return
		}
		var nd net.Dialer
		conn, err := nd.DialContext(ctx, network, address)
		ch <- result{conn, err}
	}()
	r := <-ch
	return r.conn, r.err
}

// fullBacklogPort returns a loopback port whose listener has a full accept queue, so that
// the kernel drops further SYNs and a connect times out.
func fullBacklogPort(t testing.TB) uint16 {
	t.Helper()
	fd, err := syscall.Socket(syscall.AF_INET, syscall.SOCK_STREAM, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { syscall.Close(fd) })
	if err := syscall.Bind(fd, &syscall.SockaddrInet4{Addr: [4]byte{127, 0, 0, 1}}); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Listen(fd, 0); err != nil {
		t.Fatal(err)
	}
	sa, err := syscall.Getsockname(fd)
	if err != nil {
		t.Fatal(err)
	}
	port := sa.(*syscall.SockaddrInet4).Port
	// One connection fills a backlog of 0.
	filler, err := net.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", port))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { filler.Close() })
	return uint16(port)
}
