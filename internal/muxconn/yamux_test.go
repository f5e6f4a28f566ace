package muxconn

import (
	"bytes"
	"encoding/binary"
	"io"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/yamux"
)

// The coalescer relies on how yamux writes frames: a 12-byte header in one Write, then the
// body in the next, and a stream's opening (SYN) and accepting (ACK) as window-update
// frames of their own. These tests run real yamux sessions through it, so that a yamux
// upgrade that changes how it writes shows here: as frames that no longer share a write
// (a TLS record each again), or as bytes that do not arrive intact.

// tapConn records each Write that reaches the connection under the coalescer, where each
// would become one TLS record, and passes it on.
type tapConn struct {
	net.Conn
	mu     sync.Mutex
	writes [][]byte
}

func (c *tapConn) Write(p []byte) (int, error) {
	c.mu.Lock()
	c.writes = append(c.writes, append([]byte(nil), p...))
	c.mu.Unlock()
	return c.Conn.Write(p)
}

// frame is a yamux frame as it crossed the tap: where its header and its body's end lay.
type frame struct {
	typ, flags       uint16
	stream, length   uint32
	headAt, bodyEnds int // indexes of the writes
	body             []byte
}

// frames parses what crossed the tap back into yamux frames.
func (c *tapConn) frames(t *testing.T) []frame {
	t.Helper()
	c.mu.Lock()
	defer c.mu.Unlock()
	var all []byte
	var writeOf []int // writeOf[i]: the write that carried byte i
	for i, w := range c.writes {
		all = append(all, w...)
		for range w {
			writeOf = append(writeOf, i)
		}
	}
	var out []frame
	for off := 0; off < len(all); {
		if len(all)-off < yamuxHeaderSize {
			t.Fatalf("%d bytes left over after %d frames: not a whole header", len(all)-off, len(out))
		}
		h := all[off : off+yamuxHeaderSize]
		f := frame{typ: uint16(h[1]), flags: binary.BigEndian.Uint16(h[2:4]),
			stream: binary.BigEndian.Uint32(h[4:8]), length: binary.BigEndian.Uint32(h[8:12]), headAt: writeOf[off]}
		if h[0] != 0 || f.typ > 3 {
			t.Fatalf("frame %d at byte %d: version %d, type %d: the stream of frames is corrupt", len(out), off, h[0], f.typ)
		}
		off += yamuxHeaderSize
		f.bodyEnds = f.headAt
		if f.typ == yamuxTypeData && f.length > 0 {
			end := off + int(f.length)
			if end > len(all) {
				t.Fatalf("frame %d: body of %d bytes cut short", len(out), f.length)
			}
			f.body = all[off:end]
			f.bodyEnds = writeOf[end-1]
			off = end
		}
		out = append(out, f)
	}
	return out
}

// yamuxPair runs a yamux client and server over loopback TCP, each through a coalescer over
// a tap, as both ends of a tunnel do (over TLS there).
func yamuxPair(t *testing.T) (client, server *yamux.Session, clientTap, serverTap *tapConn) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	accepted := make(chan net.Conn, 1)
	go func() { c, _ := ln.Accept(); accepted <- c }()
	cc, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	sc := <-accepted
	if sc == nil {
		t.Fatal("accept failed")
	}
	cfg := yamux.DefaultConfig()
	cfg.EnableKeepAlive = false // no pings among the frames under test
	cfg.LogOutput = io.Discard
	clientTap, serverTap = &tapConn{Conn: cc}, &tapConn{Conn: sc}
	client, err = yamux.Client(NewConn(clientTap), cfg)
	if err != nil {
		t.Fatal(err)
	}
	server, err = yamux.Server(NewConn(serverTap), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { client.Close(); server.Close() })
	return client, server, clientTap, serverTap
}

func TestRealYamuxFramesArriveIntactAndCoalesced(t *testing.T) {
	client, server, clientTap, serverTap := yamuxPair(t)
	const streams = 5
	big := bytes.Repeat([]byte("0123456789abcdef"), 16<<10) // 256 KiB: frames over the coalescing limit
	errs := make(chan error, 1)
	go func() {
		errs <- func() error {
			for i := 0; i < streams; i++ {
				st, err := server.AcceptStream()
				if err != nil {
					return err
				}
				st.SetDeadline(time.Now().Add(20 * time.Second))
				buf := make([]byte, 4)
				if _, err := io.ReadFull(st, buf); err != nil {
					return err
				}
				if _, err := st.Write([]byte("pong")); err != nil {
					return err
				}
				if _, err := io.Copy(st, st); err != nil { // echo the rest
					return err
				}
				st.Close()
			}
			return nil
		}()
	}()
	for i := 0; i < streams; i++ {
		st, err := client.OpenStream()
		if err != nil {
			t.Fatal(err)
		}
		st.SetDeadline(time.Now().Add(20 * time.Second))
		if _, err := st.Write([]byte("ping")); err != nil {
			t.Fatal(err)
		}
		buf := make([]byte, 4)
		if _, err := io.ReadFull(st, buf); err != nil || string(buf) != "pong" {
			t.Fatalf("stream %d: read %q, %v", i, buf, err)
		}
		payload := big
		if i%2 == 0 {
			payload = big[:16<<10] // one frame under the coalescing limit
		}
		go func() { st.Write(payload); st.Close() }()
		echoed, err := io.ReadAll(st)
		if err != nil || !bytes.Equal(echoed, payload) {
			t.Fatalf("stream %d: echo of %d bytes came back as %d bytes (%v), not intact", i, len(payload), len(echoed), err)
		}
	}
	if err := <-errs; err != nil {
		t.Fatal(err)
	}
	client.Close()
	server.Close()

	for _, side := range []struct {
		name  string
		tap   *tapConn
		opens uint16 // the flag of the frame that opens or accepts a stream on this side
		first string
	}{{"client", clientTap, yamuxFlagSYN, "ping"}, {"server", serverTap, yamuxFlagACK, "pong"}} {
		frames := side.tap.frames(t)
		held := 0 // streams whose opening frame shared a write with their first data
		opening := map[uint32]frame{}
		for _, f := range frames {
			if f.typ == yamuxTypeData && f.length > 0 && f.length <= maxCoalescedPayload && f.headAt != f.bodyEnds {
				t.Errorf("%s: data frame of stream %d with %d bytes: header and body in writes %d and %d, want one write (one TLS record)",
					side.name, f.stream, f.length, f.headAt, f.bodyEnds)
			}
			if f.typ == yamuxTypeWindowUpd && f.flags&side.opens != 0 {
				opening[f.stream] = f
			}
			if o, ok := opening[f.stream]; ok && f.typ == yamuxTypeData && string(f.body) == side.first {
				delete(opening, f.stream)
				if o.headAt == f.headAt {
					held++
				}
			}
		}
		// The opening frame waits for data for a couple of milliseconds only; on a loaded
		// machine some go alone. One that never shares a write means yamux changed.
		if held == 0 {
			t.Errorf("%s: no stream's opening frame shared a write with its first data (%d streams)", side.name, streams)
		}
		side.tap.mu.Lock()
		w := len(side.tap.writes)
		side.tap.mu.Unlock()
		if w >= len(frames) {
			t.Errorf("%s: %d frames took %d writes: nothing was coalesced", side.name, len(frames), w)
		}
	}
}
