//go:build unix

package proxyserver

import (
	"context"
	"errors"
	"net"
	"syscall"
	"testing"
	"time"

	"github.com/hashicorp/yamux"

	"github.com/tessel/tessel-proxy/wire"
)

// smallBufferControl shrinks a socket's kernel buffers, so that bytes a test pushes at a
// target that never reads pile up in the server rather than in the kernel.
func smallBufferControl(_, _ string, c syscall.RawConn) error {
	var serr error
	err := c.Control(func(fd uintptr) {
		if serr = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, 4096); serr == nil {
			serr = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_SNDBUF, 4096)
		}
	})
	if err != nil {
		return err
	}
	return serr
}

// stalledTarget accepts connections and never reads from them.
func stalledTarget(t *testing.T) (string, uint16) {
	t.Helper()
	lc := net.ListenConfig{Control: smallBufferControl}
	ln, err := lc.Listen(context.Background(), "tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	conns := make(chan net.Conn, 16)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			conns <- c
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		<-done
		close(conns)
		for c := range conns {
			c.Close()
		}
	})
	ap := ln.Addr().(*net.TCPAddr).AddrPort()
	return ap.Addr().String(), ap.Port()
}

// TestStalledTargetBoundsWhatTheServerBuffers pushes bytes at a target that never reads:
// what the client can hand over is what the server holds for the stream, and with the
// default configuration it is bounded by DefaultStreamWindow (plus a copy buffer and a
// few kernel bytes), so that MaxStreams such streams cannot exhaust the server's memory.
func TestStalledTargetBoundsWhatTheServerBuffers(t *testing.T) {
	host, port := stalledTarget(t)
	h := newHarness(t, allowLoopback, func(c *Config) {
		c.Dialer = &net.Dialer{Control: smallBufferControl}
	})
	sess := h.tunnel()
	stream, reply := open(t, sess, wire.KindNet, host, port, nil)
	if reply.Status != wire.StatusOK {
		t.Fatalf("open: %v", reply.Err())
	}
	chunk := make([]byte, 64<<10)
	var accepted int
	for accepted < 64<<20 {
		// The deadline only ends the push once the server stops taking bytes; a slow
		// machine can only make the count smaller.
		_ = stream.SetWriteDeadline(time.Now().Add(time.Second))
		n, err := stream.Write(chunk)
		accepted += n
		if errors.Is(err, yamux.ErrTimeout) {
			break
		}
		if err != nil {
			t.Fatalf("write after %d bytes: %v", accepted, err)
		}
	}
	limit := DefaultStreamWindow + 256<<10 /* relay buffer */ + 256<<10 /* kernel, both sockets */
	if accepted > limit {
		t.Fatalf("the server took %d bytes for a target that reads nothing; want at most %d (window %d)", accepted, limit, DefaultStreamWindow)
	}
	t.Logf("server held %d bytes for the stalled stream", accepted)
}
