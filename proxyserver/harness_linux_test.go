//go:build linux

package proxyserver

import (
	"context"
	"net"
	"net/netip"
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

// fullBacklogAt listens on ip:port (port 0: any free port) with a full accept queue, so
// that the kernel drops further SYNs to it and a connect hangs until its deadline, as to a
// host that drops packets. It returns the port.
func fullBacklogAt(t testing.TB, ip [4]byte, port uint16) uint16 {
	t.Helper()
	fd, err := syscall.Socket(syscall.AF_INET, syscall.SOCK_STREAM, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { syscall.Close(fd) })
	if err := syscall.Bind(fd, &syscall.SockaddrInet4{Addr: ip, Port: int(port)}); err != nil {
		t.Fatalf("bind %v:%d: %v", ip, port, err)
	}
	if err := syscall.Listen(fd, 0); err != nil {
		t.Fatal(err)
	}
	sa, err := syscall.Getsockname(fd)
	if err != nil {
		t.Fatal(err)
	}
	bound := uint16(sa.(*syscall.SockaddrInet4).Port)
	// One connection fills a backlog of 0.
	filler, err := net.Dial("tcp", netip.AddrPortFrom(netip.AddrFrom4(ip), bound).String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { filler.Close() })
	return bound
}
