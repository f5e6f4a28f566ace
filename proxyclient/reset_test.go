package proxyclient

import (
	"context"
	"errors"
	"io"
	"net"
	"syscall"
	"testing"
	"time"

	"github.com/tessel/tessel-proxy/internal/testtarget"
)

// resetTarget accepts one connection, reads one byte (so that the dial is done), sends
// 100 KB and resets the connection (SO_LINGER 0).
func resetTarget(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	t.Cleanup(func() { ln.Close(); <-done })
	go func() {
		defer close(done)
		c, err := ln.Accept()
		if err != nil {
			return
		}
		io.ReadFull(c, make([]byte, 1))
		c.Write(make([]byte, 100<<10))
		c.(*net.TCPConn).SetLinger(0)
		c.Close()
	}()
	return ln.Addr().String()
}

// A target's reset reaches a Go program using the Dialer as it would over TCP: a read error
// for which errors.Is(err, syscall.ECONNRESET) holds, never a clean io.EOF.
func TestDialerReportsTargetResetAsECONNRESET(t *testing.T) {
	srv := newTestServer(t, testToken)
	d := newTestDialer(t, srv.config(), testToken)
	c, err := d.DialContext(context.Background(), "tcp", resetTarget(t))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := c.Write([]byte("g")); err != nil {
		t.Fatal(err)
	}
	c.SetReadDeadline(time.Now().Add(20 * time.Second))
	n, err := io.Copy(io.Discard, c)
	if !errors.Is(err, syscall.ECONNRESET) {
		t.Fatalf("read after %d bytes: %v, want ECONNRESET", n, err)
	}
	var op *net.OpError
	if !errors.As(err, &op) || op.Op != "read" {
		t.Errorf("the error %v is not a *net.OpError of a read, as a TCP connection's is", err)
	}
}

// A Go program that resets its connection (SetLinger(0), then Close, as on a *net.TCPConn)
// makes the target read ECONNRESET.
func TestDialerSetLingerZeroResetsTheTarget(t *testing.T) {
	srv := newTestServer(t, testToken)
	d := newTestDialer(t, srv.config(), testToken)
	ln, got := testtarget.Reader(t, 20*time.Second)
	c, err := d.DialContext(context.Background(), "tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Write([]byte("half a request")); err != nil {
		t.Fatal(err)
	}
	if err := c.(interface{ SetLinger(int) error }).SetLinger(0); err != nil {
		t.Fatal(err)
	}
	c.Close()
	select {
	case err := <-got:
		if !errors.Is(err, syscall.ECONNRESET) {
			t.Fatalf("the target read %v, want ECONNRESET", err)
		}
	case <-time.After(25 * time.Second):
		t.Fatal("the target's read did not end")
	}
}
