package muxconn

import (
	"bytes"
	"net"
	"sync"
	"testing"
)

// recordingConn records each Write as one element, as the TLS layer would make it one
// record.
type recordingConn struct {
	net.Conn
	mu     sync.Mutex
	writes [][]byte
	wrote  chan struct{}
}

func (r *recordingConn) Write(p []byte) (int, error) {
	r.mu.Lock()
	r.writes = append(r.writes, append([]byte(nil), p...))
	r.mu.Unlock()
	select {
	case r.wrote <- struct{}{}:
	default:
	}
	return len(p), nil
}

func (r *recordingConn) Close() error { return nil }

func (r *recordingConn) got() [][]byte {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([][]byte(nil), r.writes...)
}

func yamuxHeader(typ byte, flags uint16, stream, length uint32) []byte {
	return []byte{0, typ, byte(flags >> 8), byte(flags), byte(stream >> 24), byte(stream >> 16), byte(stream >> 8), byte(stream),
		byte(length >> 24), byte(length >> 16), byte(length >> 8), byte(length)}
}

func TestCoalescer(t *testing.T) {
	t.Run("open, header and body leave in one write", func(t *testing.T) {
		rc := &recordingConn{wrote: make(chan struct{}, 1)}
		c := newCoalescer(rc)
		syn := yamuxHeader(yamuxTypeWindowUpd, yamuxFlagSYN, 3, 0)
		data := yamuxHeader(yamuxTypeData, 0, 3, 5)
		for _, p := range [][]byte{syn, data, []byte("hello")} {
			if n, err := c.Write(p); err != nil || n != len(p) {
				t.Fatalf("Write: %d, %v", n, err)
			}
		}
		want := bytes.Join([][]byte{syn, data, []byte("hello")}, nil)
		if w := rc.got(); len(w) != 1 || !bytes.Equal(w[0], want) {
			t.Fatalf("writes %q, want one write %q", w, want)
		}
	})
	t.Run("a server's accept and its reply leave in one write", func(t *testing.T) {
		rc := &recordingConn{wrote: make(chan struct{}, 1)}
		c := newCoalescer(rc)
		ack := yamuxHeader(yamuxTypeWindowUpd, yamuxFlagACK, 3, 0)
		reply := yamuxHeader(yamuxTypeData, 0, 3, 2)
		for _, p := range [][]byte{ack, reply, {0, 0}} {
			if n, err := c.Write(p); err != nil || n != len(p) {
				t.Fatalf("Write: %d, %v", n, err)
			}
		}
		want := bytes.Join([][]byte{ack, reply, {0, 0}}, nil)
		if w := rc.got(); len(w) != 1 || !bytes.Equal(w[0], want) {
			t.Fatalf("writes %q, want one write %q", w, want)
		}
	})
	t.Run("a body of header size is not taken for a header", func(t *testing.T) {
		rc := &recordingConn{wrote: make(chan struct{}, 1)}
		c := newCoalescer(rc)
		body := yamuxHeader(yamuxTypeWindowUpd, yamuxFlagSYN, 9, 0) // 12 bytes that look like a SYN
		c.Write(yamuxHeader(yamuxTypeData, 0, 1, 12))
		c.Write(body)
		ping := yamuxHeader(2, 0, 0, 7)
		c.Write(ping)
		w := rc.got()
		if len(w) != 2 || len(w[0]) != 24 || !bytes.Equal(w[1], ping) {
			t.Fatalf("writes %q: want the data frame whole, then the ping at once", w)
		}
	})
	t.Run("a held open frame goes out alone if nothing follows", func(t *testing.T) {
		rc := &recordingConn{wrote: make(chan struct{}, 1)}
		c := newCoalescer(rc)
		syn := yamuxHeader(yamuxTypeWindowUpd, yamuxFlagSYN, 5, 0)
		c.Write(syn)
		<-rc.wrote // the hold timer flushes it; a hang here is the failure
		if w := rc.got(); len(w) != 1 || !bytes.Equal(w[0], syn) {
			t.Fatalf("writes %q, want the open frame", w)
		}
		c.Close()
	})
	t.Run("large bodies are not copied", func(t *testing.T) {
		rc := &recordingConn{wrote: make(chan struct{}, 1)}
		c := newCoalescer(rc)
		big := make([]byte, 1<<20)
		c.Write(yamuxHeader(yamuxTypeData, 0, 1, uint32(len(big))))
		c.Write(big)
		if w := rc.got(); len(w) != 2 || len(w[1]) != len(big) {
			t.Fatalf("got %d writes, want the header then the 1 MiB body as is", len(w))
		}
	})
}
