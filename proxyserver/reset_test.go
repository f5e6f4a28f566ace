package proxyserver

import (
	"errors"
	"io"
	"net"
	"syscall"
	"testing"
	"time"

	"github.com/hashicorp/yamux"
	"github.com/tessel/tessel-proxy/internal/testtarget"
	"github.com/tessel/tessel-proxy/wire"
)

// TestTargetResetDoesNotStallTheClientsUpload: a target that answers and closes without
// reading the upload (a web server refusing a large POST) resets the connection. The client,
// still writing, must not be left blocked on a window that never opens again: its writes
// end, and its read ends with the reset (spec.md, "Resets"), never with a clean end of
// stream.
func TestTargetResetDoesNotStallTheClientsUpload(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		buf := make([]byte, 64<<10)
		io.ReadFull(c, buf)
		io.WriteString(c, "HTTP/1.0 413 Content Too Large\r\n\r\n")
		c.Close() // unread bytes: the kernel sends a RST
	}()
	port := ln.Addr().(*net.TCPAddr).AddrPort().Port()
	h := newHarness(t, allowLoopback)
	sess := h.tunnel()
	stream, reply := open(t, sess, wire.KindNet, "127.0.0.1", port, nil)
	if reply.Status != wire.StatusOK {
		t.Fatal(reply.Err())
	}

	wrote := make(chan error, 1)
	go func() {
		chunk := make([]byte, 256<<10)
		var err error
		for i := 0; i < 64 && err == nil; i++ { // 16 MiB, far past any window
			_, err = stream.Write(chunk)
		}
		wrote <- err
	}()
	stream.SetReadDeadline(time.Now().Add(20 * time.Second))
	if b, err := io.ReadAll(stream); !errors.Is(err, yamux.ErrConnectionReset) {
		t.Fatalf("read after the target reset: %v (after %q), want the stream reset", err, b)
	}
	select {
	case <-wrote:
	case <-time.After(20 * time.Second):
		t.Fatal("the client's upload is stuck after the target reset the connection")
	}
}

// TestTargetResetAfterDataReachesClientAsReset: the target sends data and then resets (SO_LINGER
// 0). The client's stream must end with a reset, not a clean end of stream that would pass a
// truncated transfer off as complete.
func TestTargetResetAfterDataReachesClientAsReset(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		// Once the client is there (its first byte), so that the dial itself succeeds.
		io.ReadFull(c, make([]byte, 1))
		c.Write(make([]byte, 100<<10))
		c.(*net.TCPConn).SetLinger(0)
		c.Close()
	}()
	port := ln.Addr().(*net.TCPAddr).AddrPort().Port()
	h := newHarness(t, allowLoopback)
	stream, reply := open(t, h.tunnel(), wire.KindNet, "127.0.0.1", port, []byte("g"))
	if reply.Status != wire.StatusOK {
		t.Fatal(reply.Err())
	}
	stream.SetReadDeadline(time.Now().Add(20 * time.Second))
	b, err := io.ReadAll(stream)
	if !errors.Is(err, yamux.ErrConnectionReset) {
		t.Fatalf("read: %v after %d bytes, want the stream reset", err, len(b))
	}
}

// TestClientResetReachesTargetAsReset: the client resets its stream (its program reset its
// connection). The target must read ECONNRESET, not an end of input.
func TestClientResetReachesTargetAsReset(t *testing.T) {
	ln, got := testtarget.Reader(t, 20*time.Second)
	port := ln.Addr().(*net.TCPAddr).AddrPort().Port()
	h := newHarness(t, allowLoopback)
	reply, conn := h.handshake(testToken)
	if reply.Status != wire.StatusOK {
		t.Fatal(reply.Err())
	}
	resets := wire.NewResetter(conn)
	sess, err := yamux.Client(resets, wire.MuxConfig())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sess.Close() })
	stream, reply := open(t, sess, wire.KindNet, "127.0.0.1", port, []byte("partial upload"))
	if reply.Status != wire.StatusOK {
		t.Fatal(reply.Err())
	}
	resets.ResetStream(stream)
	select {
	case err := <-got:
		if !errors.Is(err, syscall.ECONNRESET) {
			t.Fatalf("the target read %v, want ECONNRESET", err)
		}
	case <-time.After(25 * time.Second):
		t.Fatal("the target's read did not end")
	}
}
