// Package muxconn sits between a yamux session and its TLS connection, on both ends of a
// tunnel, and writes each yamux frame header together with its body, and a stream's opening
// or accepting frame together with the stream's first data, so that each becomes one TLS
// record instead of several.
package muxconn

import (
	"net"
	"sync"
	"time"
)

// yamux frame header layout (yamux spec.md): version, type, flags, stream id, length.
const (
	yamuxHeaderSize     = 12
	yamuxTypeData       = 0
	yamuxTypeWindowUpd  = 1
	yamuxFlagSYN        = 1
	yamuxFlagACK        = 2
	maxCoalescedPayload = 32 << 10
	// synHoldLimit bounds how long a stream-opening (SYN) or -accepting (ACK) frame may wait
	// for the stream's first data frame to share its TLS record. A client writes right after
	// opening; a server answers after dialing the target, which on a slow path can take
	// longer than this, and then the frame goes alone.
	synHoldLimit = 2 * time.Millisecond
)

// NewConn wraps the connection a yamux session runs over (see coalescer).
func NewConn(c net.Conn) net.Conn { return newCoalescer(c) }

// coalescer sits between yamux and the TLS connection. yamux writes each frame header
// and its body in separate Write calls, and each becomes a TLS record of its own (with its
// own AEAD seal and, on an idle path, its own TCP segment). coalescer holds a header back
// until its body arrives and writes both at once; it also holds the frame that opens a
// stream (SYN) or accepts it (ACK) until the next data frame, so that a new connection's
// SYN, stream request and payload leave in one record, and so do the server's ACK and reply.
//
// yamux writes from a single goroutine; the mutex only guards against the hold timer.
type coalescer struct {
	net.Conn
	mu       sync.Mutex
	held     []byte
	bodyNext int // length of the data body the next Write carries; 0: next Write is a header
	timer    *time.Timer
	err      error
}

func newCoalescer(c net.Conn) *coalescer {
	return &coalescer{Conn: c, held: make([]byte, 0, 2*yamuxHeaderSize+maxCoalescedPayload)}
}

func (c *coalescer) Write(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.err != nil {
		return 0, c.err
	}
	if c.bodyNext == 0 && len(p) == yamuxHeaderSize {
		typ, flags := p[1], uint16(p[2])<<8|uint16(p[3])
		length := int(p[8])<<24 | int(p[9])<<16 | int(p[10])<<8 | int(p[11])
		switch {
		case typ == yamuxTypeData && length > 0:
			c.bodyNext = length
			if len(c.held)+yamuxHeaderSize+length <= cap(c.held) {
				c.held = append(c.held, p...)
				return len(p), nil
			}
		case typ == yamuxTypeWindowUpd && flags&(yamuxFlagSYN|yamuxFlagACK) != 0 && len(c.held)+yamuxHeaderSize <= maxCoalescedPayload:
			c.held = append(c.held, p...)
			if c.timer == nil {
				c.timer = time.AfterFunc(synHoldLimit, c.flushHeld)
			}
			return len(p), nil
		}
	} else if c.bodyNext > 0 {
		c.bodyNext = 0
		if len(c.held) > 0 && len(c.held)+len(p) <= cap(c.held) {
			c.held = append(c.held, p...)
			return len(p), c.flushLocked()
		}
	}
	if err := c.flushLocked(); err != nil {
		return 0, err
	}
	n, err := c.Conn.Write(p)
	if err != nil {
		c.err = err
	}
	return n, err
}

func (c *coalescer) flushHeld() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.timer = nil
	if c.bodyNext == 0 { // not between a header and its body
		c.flushLocked()
	}
}

func (c *coalescer) flushLocked() error {
	if c.timer != nil {
		c.timer.Stop()
		c.timer = nil
	}
	if len(c.held) == 0 || c.err != nil {
		return c.err
	}
	_, err := c.Conn.Write(c.held)
	c.held = c.held[:0]
	if err != nil {
		c.err = err
	}
	return err
}

func (c *coalescer) Close() error {
	c.mu.Lock()
	if c.timer != nil {
		c.timer.Stop()
		c.timer = nil
	}
	c.mu.Unlock()
	return c.Conn.Close()
}
