package relay

import (
	"errors"
	"io"
	"net"
	"sync"
)

// Side is one end of a relayed connection, and how to end it.
type Side struct {
	// Conn is read from and written to. Pipe half-closes it with its CloseWrite method, and
	// closes it when both directions have ended.
	Conn io.ReadWriteCloser

	// CloseWrite, when not nil, half-closes Conn in place of Conn's own CloseWrite method
	// (a yamux stream's Close sends a FIN and leaves it readable). A Side with neither
	// cannot be half-closed: an end of input towards it counts as a failure.
	CloseWrite func() error

	// Abort ends Conn after a failure in either direction, so that its peer learns that the
	// transfer failed rather than that it ended: a TCP reset (see Reset), or the stream's
	// own reset. It must not block. Nil: Conn.Close.
	Abort func()

	// Drain, after a failure, keeps reading Conn to its end and drops what arrives: a side
	// that cannot be reset (a yamux stream) sees only a FIN, and a peer still writing into
	// a stream window that nobody reopens would hang until its stream close timeout (an
	// upload to a web server that refused it early, say).
	Drain bool

	// Count, when not nil, runs after each write to Conn with its length.
	Count func(n int)
}

// Options tune Pipe.
type Options struct {
	// Go runs the second direction's copy; nil starts a goroutine. A pool that reuses
	// goroutines with grown stacks costs less per connection than a fresh one.
	Go func(func())
}

// Pipe copies a to b and b to a until both directions have ended, and returns the bytes
// written to b and to a.
//
// A clean end of input in one direction (EOF) becomes a half-close of the other side, so
// that the end travels on and the answer can still come back. A read or write error in
// either direction ends both sides at once: each is aborted (Side.Abort), except a side
// that has already been half-closed cleanly, which is closed instead, since a reset could
// drop the end of a complete answer that it has not read yet. Pipe leaves both sides
// closed.
//
// When both Conns are *net.TCPConn, the copies use io.Copy, which splices between the
// two kernel sockets; otherwise they use Copy's buffers.
func Pipe(a, b Side, opts Options) (toB, toA int64) {
	p := &pipe{sides: [2]*Side{&a, &b}}
	goFn := opts.Go
	if goFn == nil {
		goFn = func(f func()) { go f() }
	}
	done := make(chan struct{})
	goFn(func() {
		defer close(done)
		toA = p.copy(1, 0)
	})
	toB = p.copy(0, 1)
	<-done
	a.Conn.Close()
	b.Conn.Close()
	return toB, toA
}

type pipe struct {
	sides [2]*Side

	mu       sync.Mutex
	finished [2]bool // side i was half-closed cleanly: its peer has everything
	failed   bool
}

// copy relays sides[src] to sides[dst] and returns the bytes written.
func (p *pipe) copy(src, dst int) int64 {
	s, d := p.sides[src], p.sides[dst]
	n, err := copyConn(d, s.Conn)
	if err == nil {
		err = d.closeWrite()
	}
	p.mu.Lock()
	if err == nil && !p.failed {
		p.finished[dst] = true
	}
	if err != nil && !p.failed {
		p.failed = true
		for i, side := range p.sides {
			if p.finished[i] {
				side.Conn.Close()
			} else {
				side.abort()
			}
		}
	}
	p.mu.Unlock()
	if err != nil && s.Drain {
		// Ends at the peer's FIN, when the connection under it closes, or at its timeout.
		_, _ = io.Copy(io.Discard, s.Conn)
	}
	return n
}

func copyConn(dst *Side, src io.Reader) (int64, error) {
	if dt, ok := dst.Conn.(*net.TCPConn); ok {
		if st, ok := src.(*net.TCPConn); ok {
			n, err := io.Copy(dt, st)
			if dst.Count != nil && n > 0 {
				dst.Count(int(n))
			}
			return n, err
		}
	}
	var count func(int) error
	if dst.Count != nil {
		count = func(n int) error { dst.Count(n); return nil }
	}
	return Copy(dst.Conn, src, count)
}

type closeWriter interface{ CloseWrite() error }

func (s *Side) closeWrite() error {
	if s.CloseWrite != nil {
		return s.CloseWrite()
	}
	if cw, ok := s.Conn.(closeWriter); ok {
		return cw.CloseWrite()
	}
	return errNoHalfClose
}

func (s *Side) abort() {
	if s.Abort != nil {
		s.Abort()
		return
	}
	s.Conn.Close()
}

var errNoHalfClose = errors.New("relay: connection cannot be half-closed")

// Reset closes c with a TCP reset when it is a *net.TCPConn (SO_LINGER 0), so that its
// peer reads an error (ECONNRESET) rather than an end of stream it could take for a
// complete transfer; any other connection is just closed.
func Reset(c io.Closer) {
	if tc, ok := c.(*net.TCPConn); ok {
		_ = tc.SetLinger(0)
	}
	c.Close()
}
