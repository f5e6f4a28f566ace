package wire

import (
	"bytes"
	"errors"
	"io"
	"net"
	"testing"
	"time"

	"github.com/hashicorp/yamux"
)

// resetPair is a yamux client and server over loopback TCP, the client's writes through a
// Resetter.
func resetPair(t *testing.T) (*Resetter, *yamux.Session, *yamux.Session) {
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
	cc, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	sc := <-accepted
	r := NewResetter(cc)
	client, err := yamux.Client(r, MuxConfig())
	if err != nil {
		t.Fatal(err)
	}
	server, err := yamux.Server(sc, MuxConfig())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { client.Close(); server.Close() })
	return r, client, server
}

// A reset reaches the peer's stream as yamux.ErrConnectionReset, not as an end of stream,
// and the other streams of the session carry on.
func TestResetReachesPeerAsReset(t *testing.T) {
	r, client, server := resetPair(t)
	st, err := client.OpenStream()
	if err != nil {
		t.Fatal(err)
	}
	other, err := client.OpenStream()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := st.Write([]byte("hello")); err != nil {
		t.Fatal(err)
	}
	if _, err := other.Write([]byte("other")); err != nil {
		t.Fatal(err)
	}
	peer, err := server.AcceptStream()
	if err != nil {
		t.Fatal(err)
	}
	peerOther, err := server.AcceptStream()
	if err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 5)
	if _, err := io.ReadFull(peer, buf); err != nil || string(buf) != "hello" {
		t.Fatalf("read before the reset: %q, %v", buf, err)
	}
	r.Reset(st.StreamID())
	st.Close()
	peer.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := peer.Read(buf); !errors.Is(err, yamux.ErrConnectionReset) {
		t.Fatalf("read after the reset: %v, want yamux.ErrConnectionReset", err)
	}
	if _, err := io.ReadFull(peerOther, buf); err != nil || string(buf) != "other" {
		t.Fatalf("the other stream after the reset: %q, %v", buf, err)
	}
	if _, err := other.Write([]byte("still")); err != nil {
		t.Fatal(err)
	}
	if _, err := io.ReadFull(peerOther, buf); err != nil || string(buf) != "still" {
		t.Fatalf("the other stream after the reset: %q, %v", buf, err)
	}
}

// Resets asked for while the session writes many frames from other streams land between
// frames, never inside one: the session stays intact and the streams not reset deliver their
// bytes exactly.
func TestResetBetweenFramesUnderLoad(t *testing.T) {
	r, client, server := resetPair(t)
	const bulk, resets, size = 4, 400, 4 << 20
	payload := make([]byte, size)
	for i := range payload {
		payload[i] = byte(i * 7)
	}
	bulkIDs := map[uint32]bool{}
	var bulkStreams []*yamux.Stream
	for range bulk {
		st, err := client.OpenStream()
		if err != nil {
			t.Fatal(err)
		}
		bulkIDs[st.StreamID()] = true
		bulkStreams = append(bulkStreams, st)
	}
	results := make(chan error, bulk+resets)
	go func() {
		for range bulk + resets {
			peer, err := server.AcceptStream()
			if err != nil {
				return
			}
			go func() {
				// As a server answers a stream request, before any reset: a stream is
				// reset only once established (a stream reset before its peer accepted it
				// would hold one of yamux's accept-backlog slots for StreamCloseTimeout).
				if _, err := peer.Write([]byte("k")); err != nil {
					results <- err
					return
				}
				got, err := io.ReadAll(peer)
				switch {
				case !bulkIDs[peer.StreamID()]:
					if err == nil {
						err = errors.New("a reset stream ended cleanly")
					} else {
						err = nil
					}
				case err == nil && !bytes.Equal(got, payload):
					err = errors.New("a stream that was not reset delivered other bytes")
				}
				results <- err
			}()
		}
	}()
	for _, st := range bulkStreams {
		go func() {
			for off := 0; off < size; off += 4 << 10 {
				if _, err := st.Write(payload[off : off+4<<10]); err != nil {
					return
				}
			}
			st.Close()
		}()
	}
	for range resets {
		st, err := client.OpenStream()
		if err != nil {
			t.Fatal(err)
		}
		go func() {
			if _, err := io.ReadFull(st, make([]byte, 1)); err != nil {
				return
			}
			st.Write([]byte("to be reset"))
			r.Reset(st.StreamID())
			st.Close()
		}()
	}
	for range bulk + resets {
		select {
		case err := <-results:
			if err != nil {
				t.Fatal(err)
			}
		case <-time.After(60 * time.Second):
			t.Fatal("streams did not finish")
		}
	}
	if client.IsClosed() || server.IsClosed() {
		t.Fatal("a reset broke the session")
	}
}
