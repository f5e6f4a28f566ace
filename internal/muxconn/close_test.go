package muxconn

import (
	"errors"
	"io"
	"net"
	"testing"
	"time"

	"github.com/hashicorp/yamux"
)

// tcpPair returns both ends of a loopback TCP connection, the far end with a small receive
// buffer so that writes to it block soon once it stops reading.
func tcpPair(t *testing.T) (near, far net.Conn) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	accepted := make(chan net.Conn, 1)
	go func() {
		c, _ := ln.Accept()
		accepted <- c
	}()
	near, err = net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	far = <-accepted
	if far == nil {
		t.Fatal("accept failed")
	}
	far.(*net.TCPConn).SetReadBuffer(4096)
	near.(*net.TCPConn).SetWriteBuffer(4096)
	t.Cleanup(func() { near.Close(); far.Close() })
	return near, far
}

// TestCloseDoesNotWaitForABlockedWrite: a peer that stops reading blocks a Write in the
// kernel, with the coalescer's lock held; Close must still return at once and make that
// Write fail, or yamux's keepalive and Session.Close hang behind it.
func TestCloseDoesNotWaitForABlockedWrite(t *testing.T) {
	near, _ := tcpPair(t) // far never reads
	c := NewConn(near)
	wrote := make(chan error, 1)
	go func() {
		big := make([]byte, 64<<20)
		c.Write(yamuxHeader(yamuxTypeData, 0, 1, uint32(len(big))))
		_, err := c.Write(big)
		wrote <- err
	}()
	time.Sleep(200 * time.Millisecond) // the write is blocked by now
	closed := make(chan struct{})
	go func() { c.Close(); close(closed) }()
	select {
	case <-closed:
	case <-time.After(10 * time.Second):
		t.Fatal("Close waited for a Write blocked on a peer that does not read")
	}
	select {
	case err := <-wrote:
		if err == nil {
			t.Fatal("the blocked Write succeeded after Close")
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the blocked Write did not end after Close")
	}
}

// yamuxOverConn runs a yamux client over a plain connection and a yamux server over a Conn,
// which it returns too.
func yamuxOverConn(t *testing.T) (client *yamux.Session, server *yamux.Session, mc *Conn) {
	t.Helper()
	a, b := net.Pipe()
	cfg := yamux.DefaultConfig()
	cfg.LogOutput = io.Discard
	cfg.EnableKeepAlive = false
	mc = NewConn(b)
	server, err := yamux.Server(mc, cfg)
	if err != nil {
		t.Fatal(err)
	}
	client, err = yamux.Client(a, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { client.Close(); server.Close() })
	return client, server, mc
}

// TestResetStreamDropsTheStreamFromTheSession: after ResetStream the server's session holds
// the stream no more, and discards what the client still sends on it; other streams go on.
func TestResetStreamDropsTheStreamFromTheSession(t *testing.T) {
	client, server, mc := yamuxOverConn(t)
	doomed, err := client.OpenStream()
	if err != nil {
		t.Fatal(err)
	}
	doomed.Write([]byte("payload the server will not read"))
	accepted, err := server.AcceptStream()
	if err != nil {
		t.Fatal(err)
	}
	mc.Accepted()
	accepted.Close()
	mc.ResetStream(accepted.StreamID())
	// The reset is read between frames: the client's next frames carry it in.
	doomed.Write(make([]byte, 100<<10))
	other, err := client.OpenStream()
	if err != nil {
		t.Fatal(err)
	}
	other.Write([]byte("hello"))
	o, err := server.AcceptStream()
	if err != nil {
		t.Fatal(err)
	}
	mc.Accepted()
	buf := make([]byte, 5)
	if _, err := io.ReadFull(o, buf); err != nil || string(buf) != "hello" {
		t.Fatalf("the other stream read %q, %v", buf, err)
	}
	if n := server.NumStreams(); n != 1 {
		t.Fatalf("the server's session holds %d streams after one was reset; want 1", n)
	}
	if _, err := accepted.Read(buf); !errors.Is(err, yamux.ErrConnectionReset) {
		t.Fatalf("reading the reset stream: %v, want %v", err, yamux.ErrConnectionReset)
	}
}

// TestAcceptQueueHoldsBackNewStreams: with an accept queue of 2, the session gets a third
// new stream only once one of the first two is accepted.
func TestAcceptQueueHoldsBackNewStreams(t *testing.T) {
	client, server, mc := yamuxOverConn(t)
	mc.SetAcceptQueue(2)
	for i := range 3 {
		go func() {
			s, err := client.OpenStream()
			if err == nil {
				s.Write([]byte{byte(i)})
			}
		}()
	}
	waitStreams := func(want int) int {
		deadline := time.Now().Add(5 * time.Second)
		for server.NumStreams() < want && time.Now().Before(deadline) {
			time.Sleep(10 * time.Millisecond)
		}
		return server.NumStreams()
	}
	if n := waitStreams(2); n != 2 {
		t.Fatalf("the session got %d streams with none accepted; want 2", n)
	}
	time.Sleep(100 * time.Millisecond) // a third would arrive by now if it could
	if n := server.NumStreams(); n != 2 {
		t.Fatalf("the session got %d streams past an accept queue of 2", n)
	}
	if _, err := server.AcceptStream(); err != nil {
		t.Fatal(err)
	}
	mc.Accepted()
	if n := waitStreams(3); n != 3 {
		t.Fatalf("after one accept the session has %d streams; want the third", n)
	}
}
