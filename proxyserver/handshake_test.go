package proxyserver

import (
	"crypto/tls"
	"errors"
	"io"
	"net"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/tessel/tessel-proxy/wire"
)

// TestMaxHandshakesClosesConnectionsPastTheLimit holds MaxHandshakes connections silent in
// their handshake: the next one is closed at once, not left to the handshake deadline, and
// once the silent ones go, a client gets through again.
func TestMaxHandshakesClosesConnectionsPastTheLimit(t *testing.T) {
	h := newHarness(t, func(c *Config) {
		c.MaxHandshakes = 2
		c.HandshakeTimeout = time.Hour // only the limit can close the third connection
	})
	var silent []net.Conn
	for range 2 {
		c, err := net.Dial("tcp", h.addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		silent = append(silent, c)
	}
	third, err := net.Dial("tcp", h.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer third.Close()
	_ = third.SetReadDeadline(time.Now().Add(20 * time.Second))
	if _, err := io.ReadAll(third); err != nil {
		t.Fatalf("connection past MaxHandshakes: want it closed at once, got %v", err)
	}
	if !strings.Contains(h.logs.String(), "too many handshakes in progress") {
		t.Errorf("no warning in the log when dropping a connection at the limit:\n%s", h.logs)
	}

	for _, c := range silent {
		c.Close()
	}
	// The server notices the silent clients leave asynchronously; then handshakes work.
	for i := 0; ; i++ {
		conn, err := tls.Dial("tcp", h.addr, &tls.Config{RootCAs: h.roots, ServerName: "127.0.0.1"})
		if err == nil {
			err = wire.WriteHello(conn, wire.Hello{Version: wire.Version, Token: testToken})
			var reply wire.Reply
			if err == nil {
				reply, err = wire.ReadReply(conn)
			}
			conn.Close()
			if err == nil && reply.Status == wire.StatusOK {
				break
			}
		}
		if i == 200 {
			t.Fatalf("handshake after the silent clients left: %v", err)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestHandshakeDeadlineCoversTricklingClients sends the Hello one byte at a time, each well
// within the deadline: the deadline counts from accept, so the trickle cannot stretch it.
func TestHandshakeDeadlineCoversTricklingClients(t *testing.T) {
	h := newHarness(t, func(c *Config) { c.HandshakeTimeout = 300 * time.Millisecond })
	conn := h.dialTLS()
	hello := append(append([]byte{}, wire.Magic[:]...), wire.Version, 0x20, 0x00) // 8192-byte token follows
	hello = append(hello, make([]byte, 8192)...)
	for i, b := range hello {
		if _, err := conn.Write([]byte{b}); err != nil {
			return // closed by the server: what the deadline is for
		}
		if i == len(hello)-1 {
			break
		}
		time.Sleep(5 * time.Millisecond)
	}
	_ = conn.SetReadDeadline(time.Now().Add(20 * time.Second))
	_, err := io.ReadAll(conn)
	if errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatal("a trickling client outlived the handshake deadline")
	}
}
