package proxyclient

import (
	"bytes"
	"context"
	"io"
	"net"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tessel/tessel-proxy/wire"
)

// TestDeadTunnelWithFullSendBufferIsReleased: the proxy goes silent while the client has
// more in flight than the TCP connection can hold, so that the session's writer is blocked
// in a write that will never complete (TCP would retry for many minutes). When keepalive
// gives up on the session, its Close must not wait behind that write: the session's
// goroutines, buffers and socket are let go of at once.
func TestDeadTunnelWithFullSendBufferIsReleased(t *testing.T) {
	srv := newTestServer(t, testToken)
	// Dials that lose the race with keepalive retry on a new, live tunnel: their target
	// takes in whatever comes.
	target := newDiscardTarget(t)
	mux := wire.MuxConfig()
	mux.KeepAliveInterval = 50 * time.Millisecond
	mux.ConnectionWriteTimeout = 200 * time.Millisecond
	d := newTestDialer(t, srv.config(), testToken, WithMuxConfig(mux))

	if err := d.Connect(context.Background()); err != nil {
		t.Fatal(err)
	}
	srv.freezeTunnels()
	d.tun.mu.Lock()
	tun := d.tun.cur
	d.tun.mu.Unlock()
	// Each stream may send its initial window (256 KiB) unasked; 64 of them are more than
	// the kernel buffers of a loopback connection hold.
	early := bytes.Repeat([]byte("x"), 256<<10)
	var wg sync.WaitGroup
	for i := 0; i < 64; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			if c, err := d.DialEarly(ctx, "tcp", target, early); err == nil {
				c.Close()
			}
		}()
	}
	eventually(t, "keepalive to give up on the silent proxy", tun.sess.IsClosed)
	dialed := make(chan struct{})
	go func() { wg.Wait(); close(dialed) }()
	select {
	case <-dialed:
	case <-time.After(15 * time.Second):
		t.Fatal("dials on the dead tunnel still hang 15 s after keepalive gave up on it")
	}
	eventually(t, "the dead session's Close to finish", func() bool {
		return !strings.Contains(allStacks(), "yamux.(*Session).Close(")
	})
}

// newDiscardTarget listens on loopback, reads and drops everything, and returns its address.
func newDiscardTarget(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	var mu sync.Mutex
	var conns []net.Conn
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
			wg.Add(1)
			go func() { defer wg.Done(); io.Copy(io.Discard, c) }()
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		mu.Lock()
		for _, c := range conns {
			c.Close()
		}
		mu.Unlock()
		wg.Wait()
	})
	return ln.Addr().String()
}

func allStacks() string {
	buf := make([]byte, 1<<20)
	return string(buf[:runtime.Stack(buf, true)])
}
