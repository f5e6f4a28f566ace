package proxyserver

import (
	"crypto/tls"
	"encoding/binary"
	"io"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/tessel/tessel-proxy/wire"
)

// rawTunnel is a hostile client that speaks yamux frames itself: it opens streams with a
// payload and never closes them, as no well-behaved client would, and counts the replies.
type rawTunnel struct {
	t      *testing.T
	conn   *tls.Conn
	nextID uint32

	mu      sync.Mutex
	replies map[wire.Status]int
	done    chan struct{}
}

func (h *harness) rawTunnel(t *testing.T) *rawTunnel {
	t.Helper()
	reply, conn := h.handshake(testToken)
	if reply.Status != wire.StatusOK {
		t.Fatalf("handshake: %v", reply.Err())
	}
	r := &rawTunnel{t: t, conn: conn, nextID: 1, replies: make(map[wire.Status]int), done: make(chan struct{})}
	go r.readFrames()
	t.Cleanup(func() { conn.Close(); <-r.done })
	return r
}

// readFrames reads the server's frames and counts the status of each stream's first data
// frame: its reply.
func (r *rawTunnel) readFrames() {
	defer close(r.done)
	var hdr [12]byte
	answered := make(map[uint32]bool)
	body := make([]byte, 64<<10)
	for {
		if _, err := io.ReadFull(r.conn, hdr[:]); err != nil {
			return
		}
		if hdr[1] == 2 && hdr[3]&1 != 0 { // a ping: answer it, or the server's keepalive drops us
			pong := hdr
			pong[3] = 2 // ACK
			if _, err := r.conn.Write(pong[:]); err != nil {
				return
			}
			continue
		}
		if hdr[1] != 0 { // not data
			continue
		}
		id, n := binary.BigEndian.Uint32(hdr[4:8]), int(binary.BigEndian.Uint32(hdr[8:12]))
		if n > len(body) {
			body = make([]byte, n)
		}
		if _, err := io.ReadFull(r.conn, body[:n]); err != nil {
			return
		}
		if n > 0 && !answered[id] {
			answered[id] = true
			r.mu.Lock()
			r.replies[wire.Status(body[0])]++
			r.mu.Unlock()
		}
	}
}

// open opens a stream whose first frame carries data, and never closes it.
func (r *rawTunnel) open(data []byte) {
	r.t.Helper()
	frame := make([]byte, 12+len(data))
	frame[1] = 0                              // data
	binary.BigEndian.PutUint16(frame[2:4], 1) // SYN
	binary.BigEndian.PutUint32(frame[4:8], r.nextID)
	binary.BigEndian.PutUint32(frame[8:12], uint32(len(data)))
	copy(frame[12:], data)
	r.nextID += 2
	if _, err := r.conn.Write(frame); err != nil {
		r.t.Fatalf("open stream %d: %v", r.nextID-2, err)
	}
}

func (r *rawTunnel) count(s wire.Status) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.replies[s]
}

// heapInUse is the live heap after a collection: what the process holds, garbage aside.
func heapInUse() uint64 {
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.HeapInuse
}

// sessionStreams is the number of streams the server's yamux sessions hold.
func (h *harness) sessionStreams() int {
	h.srv.mu.Lock()
	defer h.srv.mu.Unlock()
	n := 0
	for t := range h.srv.tunnels {
		t.mu.Lock()
		if t.session != nil {
			n += t.session.NumStreams()
		}
		t.mu.Unlock()
	}
	return n
}

// floodRefusedStreams opens n streams, each with a request and payload of 256 KiB in all
// (the window a yamux client may fill before any answer), that the server refuses with
// want; the client never closes them. It fails the test as soon as the server's heap has
// grown by more than bound, and returns the most it grew.
func floodRefusedStreams(t *testing.T, h *harness, r *rawTunnel, n int, request []byte, want wire.Status, bound uint64) uint64 {
	t.Helper()
	data := make([]byte, 256<<10)
	copy(data, request)
	base := heapInUse()
	var peak uint64
	check := func(sent int) {
		now := heapInUse()
		grown := now - min(base, now)
		peak = max(peak, grown)
		if grown > bound {
			t.Fatalf("after %d refused streams of 256 KiB (%d answered), the server's heap grew by %d MiB; want at most %d MiB",
				sent, r.count(want), grown>>20, bound>>20)
		}
	}
	for i := 1; i <= n; i++ {
		r.open(data)
		if i%200 == 0 {
			check(i)
		}
	}
	if _, ok := waitFor(30*time.Second, func() bool { return r.count(want) >= n }); !ok {
		t.Fatalf("%d of %d streams answered %v; other replies: %v", r.count(want), n, want, r.replies)
	}
	check(n)
	return peak
}

// TestRefusedStreamsDoNotPileUp: a client that opens thousands of streams the server
// refuses, each carrying 256 KiB, and never closes them, must not make the server hold them:
// today's yamux keeps a stream closed on one side for 5 minutes with its receive buffer.
func TestRefusedStreamsDoNotPileUp(t *testing.T) {
	const streams, bound = 1000, 64 << 20
	badRequest := []byte{wire.Version, 99, 1, 'x', 0, 80} // kind 99 does not exist

	t.Run("bad requests", func(t *testing.T) {
		h := newHarness(t)
		r := h.rawTunnel(t)
		peak := floodRefusedStreams(t, h, r, streams, badRequest, wire.StatusBadRequest, bound)
		if n := h.sessionStreams(); n > DefaultMaxStreams {
			t.Errorf("the server's session holds %d streams after refusing them all; want at most %d", n, DefaultMaxStreams)
		}
		t.Logf("%d bad requests of 256 KiB: server heap grew by at most %.1f MiB; its session holds %d streams", streams, float64(peak)/(1<<20), h.sessionStreams())
	})

	t.Run("over max streams", func(t *testing.T) {
		host, port := echoServer(t)
		h := newHarness(t, allowLoopback, func(c *Config) { c.MaxStreams = 2 })
		sess := h.tunnel()
		for range 2 {
			if _, reply := open(t, sess, wire.KindNet, host, port, nil); reply.Status != wire.StatusOK {
				t.Fatal(reply.Err())
			}
		}
		r := h.rawTunnel(t)
		for range 2 { // this tunnel's own two
			r.open(append([]byte{wire.Version, byte(wire.KindNet), byte(len(host))}, append([]byte(host), byte(port>>8), byte(port))...))
		}
		peak := floodRefusedStreams(t, h, r, streams, badRequest, wire.StatusLimit, bound)
		if n := h.sessionStreams(); n > 2*2+8 {
			t.Errorf("the server's sessions hold %d streams after refusing the rest; want at most the 4 open ones (and a few queued)", n)
		}
		t.Logf("%d streams over --max-streams: server heap grew by at most %.1f MiB", streams, float64(peak)/(1<<20))
	})
}
