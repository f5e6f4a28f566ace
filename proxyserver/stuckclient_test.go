package proxyserver

import (
	"context"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/yamux"

	"github.com/tessel/tessel-proxy/wire"
)

// endlessSource accepts connections and writes to each until it fails: a download that
// never ends. It reports how many of its connections are open.
func endlessSource(t *testing.T) (host string, port uint16, open *atomic.Int64) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	open = new(atomic.Int64)
	var wg sync.WaitGroup
	t.Cleanup(func() { ln.Close(); wg.Wait() })
	wg.Add(1)
	go func() {
		defer wg.Done()
		chunk := make([]byte, 64<<10)
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			open.Add(1)
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer open.Add(-1)
				defer c.Close()
				for {
					if _, err := c.Write(chunk); err != nil {
						return
					}
				}
			}()
		}
	}()
	ap := ln.Addr().(*net.TCPAddr).AddrPort()
	return ap.Addr().String(), ap.Port(), open
}

// stoppableConn is a client's connection whose reads can be stopped for good, as when the
// client process is stopped (SIGSTOP) or wedged: the kernel's buffers fill, and then the
// server's writes block.
type stoppableConn struct {
	net.Conn
	stop, closed         chan struct{}
	stopOnce, closedOnce sync.Once
}

func (c *stoppableConn) Read(p []byte) (int, error) {
	select {
	case <-c.stop:
		<-c.closed
		return 0, net.ErrClosed
	default:
	}
	return c.Conn.Read(p)
}

func (c *stoppableConn) Close() error {
	c.closedOnce.Do(func() { close(c.closed) })
	return c.Conn.Close()
}

func (c *stoppableConn) stopReading() { c.stopOnce.Do(func() { close(c.stop) }) }

// stoppableTunnel authenticates and starts a yamux client over a connection whose reads the
// test can stop. Its keepalive is off: a stopped process sends no pings either.
func (h *harness) stoppableTunnel() (*yamux.Session, *stoppableConn) {
	h.t.Helper()
	reply, conn := h.handshake(testToken)
	if reply.Status != wire.StatusOK {
		h.t.Fatalf("handshake: %v", reply.Err())
	}
	// A small receive buffer: the server's writes block soon after the client stops.
	if err := conn.NetConn().(*net.TCPConn).SetReadBuffer(64 << 10); err != nil {
		h.t.Fatal(err)
	}
	sc := &stoppableConn{Conn: conn, stop: make(chan struct{}), closed: make(chan struct{})}
	cfg := wire.MuxConfig()
	cfg.EnableKeepAlive = false
	sess, err := yamux.Client(sc, cfg)
	if err != nil {
		h.t.Fatal(err)
	}
	return sess, sc
}

// startDownloads opens n streams from the endless source and reads all of them at once,
// as n curl processes would, until each has read a while; the reads go on until the
// session ends.
func startDownloads(t *testing.T, sess *yamux.Session, host string, port uint16, n int) {
	t.Helper()
	var started sync.WaitGroup
	for i := 0; i < n; i++ {
		stream, reply := open(t, sess, wire.KindNet, host, port, nil)
		if reply.Status != wire.StatusOK {
			t.Fatalf("download %d: %v", i, reply.Err())
		}
		started.Add(1)
		go func() {
			if _, err := io.CopyN(io.Discard, stream, 1<<20); err != nil {
				t.Errorf("download: %v", err)
			}
			started.Done()
			io.Copy(io.Discard, stream)
		}()
	}
	started.Wait()
}

// gauge reads the value of the server's gauge called name.
func (h *harness) gauge(name string) float64 {
	mfs, err := h.reg.Gather()
	if err != nil {
		h.t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == name && len(mf.GetMetric()) == 1 {
			return mf.GetMetric()[0].GetGauge().GetValue()
		}
	}
	h.t.Fatalf("no gauge %s", name)
	return 0
}

// waitFor polls cond until it holds or limit passes, and returns how long it took and
// whether it held.
func waitFor(limit time.Duration, cond func() bool) (time.Duration, bool) {
	start := time.Now()
	for !cond() {
		if time.Since(start) > limit {
			return time.Since(start), false
		}
		time.Sleep(20 * time.Millisecond)
	}
	return time.Since(start), true
}

// TestClientThatStopsReadingIsDroppedWithinKeepalive: a client opens 16 downloads, reads for
// a while, then stops reading. The server's writes to it block; its keepalive must still
// drop the tunnel, its 16 streams and their target connections within the keepalive bound
// (interval + write timeout: 25 s with wire.MuxConfig, scaled down here).
func TestClientThatStopsReadingIsDroppedWithinKeepalive(t *testing.T) {
	const interval, writeTimeout = 500 * time.Millisecond, 500 * time.Millisecond
	host, port, targets := endlessSource(t)
	h := newHarness(t, allowLoopback, func(c *Config) {
		mux := wire.MuxConfig()
		mux.KeepAliveInterval = interval
		mux.ConnectionWriteTimeout = writeTimeout
		c.Mux = mux
	})
	sess, conn := h.stoppableTunnel()
	// Runs before the harness's cleanup: a server still wedged on this client (the failure)
	// gets a reset and can stop.
	t.Cleanup(func() { conn.Close(); sess.Close() })
	startDownloads(t, sess, host, port, 16)

	conn.stopReading()
	bound := interval + writeTimeout
	took, ok := waitFor(bound+5*time.Second, func() bool {
		return h.gauge("tessel_proxy_tunnels_open") == 0 && h.gauge("tessel_proxy_streams_open") == 0 && targets.Load() == 0
	})
	if !ok {
		t.Fatalf("%v after the client stopped reading: %v tunnels, %v streams and %d target connections still open; want none within the keepalive bound %v",
			took.Round(time.Millisecond), h.gauge("tessel_proxy_tunnels_open"), h.gauge("tessel_proxy_streams_open"), targets.Load(), bound)
	}
	t.Logf("tunnel, 16 streams and their targets released %v after the client stopped reading (keepalive bound %v)", took.Round(time.Millisecond), bound)
}

// TestShutdownEndsWithinGraceDespiteAClientThatStopsReading: with a client wedged as above
// and keepalive too slow to notice first, Shutdown must still return at the end of its grace
// period, as SIGTERM promises.
func TestShutdownEndsWithinGraceDespiteAClientThatStopsReading(t *testing.T) {
	const grace = time.Second
	host, port, targets := endlessSource(t)
	h := newHarness(t, allowLoopback) // keepalive at its default, far longer than grace
	sess, conn := h.stoppableTunnel()
	t.Cleanup(func() { conn.Close(); sess.Close() })
	startDownloads(t, sess, host, port, 16)
	conn.stopReading()
	// Let the server's writes block on the full connection.
	time.Sleep(300 * time.Millisecond)

	done := make(chan time.Duration, 1)
	start := time.Now()
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), grace)
		defer cancel()
		h.srv.Shutdown(ctx)
		done <- time.Since(start)
	}()
	select {
	case took := <-done:
		t.Logf("Shutdown returned %v after it began (grace %v)", took.Round(time.Millisecond), grace)
	case <-time.After(grace + 5*time.Second):
		t.Errorf("Shutdown still running %v after it began, with a grace period of %v", time.Since(start).Round(time.Millisecond), grace)
		conn.Close() // unwedge it, so that the test can end
		<-done
	}
	if _, ok := waitFor(5*time.Second, func() bool { return targets.Load() == 0 }); !ok {
		t.Errorf("%d target connections still open after Shutdown", targets.Load())
	}
}
