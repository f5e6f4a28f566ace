// Package muxconn sits between a yamux session and its TLS connection, on both ends of a
// tunnel. On the way out it writes each yamux frame header together with its body, and a
// stream's opening or accepting frame together with the stream's first data, so that each
// becomes one TLS record instead of several. On the way in it follows the frame boundaries,
// which lets a server drop a stream from its own session at once (ResetStream) and hold
// back a peer that opens streams faster than they are accepted (SetAcceptQueue): things
// hashicorp/yamux v0.1.2 has no call for.
package muxconn

import (
	"encoding/binary"
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
	yamuxFlagRST        = 8
	maxCoalescedPayload = 32 << 10
	// synHoldLimit bounds how long a stream-opening (SYN) or -accepting (ACK) frame may wait
	// for the stream's first data frame to share its TLS record. A client writes right after
	// opening; a server answers after dialing the target, which on a slow path can take
	// longer than this, and then the frame goes alone.
	synHoldLimit = 2 * time.Millisecond
)

// NewConn wraps the connection a yamux session runs over (see Conn).
func NewConn(c net.Conn) *Conn { return newCoalescer(c) }

// Conn sits between yamux and the TLS connection.
//
// Writes: yamux writes each frame header and its body in separate Write calls, and each
// becomes a TLS record of its own (with its own AEAD seal and, on an idle path, its own TCP
// segment). Conn holds a header back until its body arrives and writes both at once; it
// also holds the frame that opens a stream (SYN) or accepts it (ACK) until the next data
// frame, so that a new connection's SYN, stream request and payload leave in one record, and
// so do the server's ACK and reply. yamux writes from a single goroutine; the mutex only
// guards against the hold timer.
//
// Close closes the connection before anything else, so that it never waits for a Write
// blocked on a peer that stopped reading: that Write fails instead, and yamux's keepalive
// and Session.Close end the session.
//
// Reads: yamux reads from a single goroutine; Conn tracks where each frame ends, so that it
// can put frames of its own between the peer's (ResetStream) or pause between them
// (SetAcceptQueue).
type Conn struct {
	net.Conn
	mu       sync.Mutex
	held     []byte
	bodyNext int // length of the data body the next Write carries; 0: next Write is a header
	timer    *time.Timer
	err      error

	// Read side. hdr, hdrSeen and bodyLeft belong to the reading goroutine.
	hdr      [yamuxHeaderSize]byte
	hdrSeen  int    // bytes of the current frame header read so far
	bodyLeft uint32 // bytes of the current data frame's body still to come

	rmu        sync.Mutex
	rcond      *sync.Cond // signalled when inject, unaccepted or closed change
	inject     []byte     // whole frames to hand the session before the peer's next frame
	unaccepted int        // streams the peer opened (SYN frames read) minus Accepted calls
	acceptMax  int        // 0: no limit
	closed     bool
}

func newCoalescer(c net.Conn) *Conn {
	mc := &Conn{Conn: c, held: make([]byte, 0, 2*yamuxHeaderSize+maxCoalescedPayload)}
	mc.rcond = sync.NewCond(&mc.rmu)
	return mc
}

func (c *Conn) Write(p []byte) (int, error) {
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

func (c *Conn) flushHeld() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.timer = nil
	if c.bodyNext == 0 { // not between a header and its body
		c.flushLocked()
	}
}

func (c *Conn) flushLocked() error {
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

// Close closes the connection at once, even while a Write is blocked in it (that Write then
// fails). Over TLS it closes the TCP connection first: a close_notify alert would have to
// wait, up to crypto/tls's 5 s, behind data the peer is not reading.
func (c *Conn) Close() error {
	var err error
	if nc, ok := c.Conn.(interface{ NetConn() net.Conn }); ok {
		err = nc.NetConn().Close()
		c.Conn.Close() // releases the TLS state; its alert fails on the closed connection
	} else {
		err = c.Conn.Close()
	}
	c.rmu.Lock()
	c.closed = true
	c.rcond.Broadcast()
	c.rmu.Unlock()
	c.mu.Lock()
	if c.timer != nil {
		c.timer.Stop()
		c.timer = nil
	}
	c.mu.Unlock()
	return err
}

// Read hands the session the peer's frames, with any frames ResetStream asked for put
// between them, and pauses between frames while SetAcceptQueue's limit is reached.
func (c *Conn) Read(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	pending := false
	if c.hdrSeen == 0 && c.bodyLeft == 0 { // between frames
		c.rmu.Lock()
		for len(c.inject) == 0 && !c.closed && c.acceptMax > 0 && c.unaccepted >= c.acceptMax {
			c.rcond.Wait()
		}
		if len(c.inject) > 0 {
			n := copy(p, c.inject)
			c.inject = c.inject[n:]
			c.rmu.Unlock()
			return n, nil
		}
		if c.closed {
			c.rmu.Unlock()
			return 0, net.ErrClosed
		}
		c.rmu.Unlock()
	} else {
		c.rmu.Lock()
		pending = len(c.inject) > 0 || c.acceptMax > 0 && c.unaccepted >= c.acceptMax
		c.rmu.Unlock()
	}
	if pending {
		// Stop at the end of this frame, so that the next Read starts between frames.
		if c.bodyLeft > 0 {
			// In uint64: a peer's length may not fit an int on 32-bit machines.
			if uint64(len(p)) > uint64(c.bodyLeft) {
				p = p[:c.bodyLeft]
			}
		} else {
			p = p[:min(len(p), yamuxHeaderSize-c.hdrSeen)]
		}
	}
	n, err := c.Conn.Read(p)
	c.track(p[:n])
	return n, err
}

// track follows the frame boundaries through b, the next bytes from the peer, and counts
// the streams it opens.
func (c *Conn) track(b []byte) {
	for len(b) > 0 {
		if c.bodyLeft > 0 {
			k := min(uint64(len(b)), uint64(c.bodyLeft))
			c.bodyLeft -= uint32(k)
			b = b[k:]
			continue
		}
		k := copy(c.hdr[c.hdrSeen:], b)
		c.hdrSeen += k
		b = b[k:]
		if c.hdrSeen < yamuxHeaderSize {
			return
		}
		c.hdrSeen = 0
		typ, flags := c.hdr[1], binary.BigEndian.Uint16(c.hdr[2:4])
		if typ == yamuxTypeData {
			c.bodyLeft = binary.BigEndian.Uint32(c.hdr[8:12])
		}
		if (typ == yamuxTypeData || typ == yamuxTypeWindowUpd) && flags&yamuxFlagSYN != 0 {
			c.rmu.Lock()
			c.unaccepted++
			c.rmu.Unlock()
		}
	}
}

// ResetStream makes the local yamux session drop stream id as if the peer had reset it:
// the session forgets the stream and its receive buffer at once, and discards, without
// buffering, whatever the peer still sends on it. The peer is told nothing; close the
// stream first, so that it gets a FIN after whatever was written. yamux itself keeps a
// stream that it closed but the peer did not until its StreamCloseTimeout, receive buffer
// and all.
func (c *Conn) ResetStream(id uint32) {
	var hdr [yamuxHeaderSize]byte
	hdr[1] = yamuxTypeWindowUpd
	binary.BigEndian.PutUint16(hdr[2:4], yamuxFlagRST)
	binary.BigEndian.PutUint32(hdr[4:8], id)
	c.rmu.Lock()
	c.inject = append(c.inject, hdr[:]...)
	c.rcond.Broadcast()
	c.rmu.Unlock()
}

// SetAcceptQueue makes Read stop handing the session the peer's frames while n streams the
// peer opened wait to be accepted (the session's owner calls Accepted for each stream it
// accepts), so that a peer cannot make the session buffer data for more than n streams
// nobody has taken yet: yamux queues up to its AcceptBacklog of them, each with up to
// 256 KiB its peer may send before any answer. 0, the default, means no limit. Set it to
// 0 once the session has sent a GoAway: yamux then refuses new streams itself, without
// queuing them, and they are never accepted.
func (c *Conn) SetAcceptQueue(n int) {
	c.rmu.Lock()
	c.acceptMax = n
	c.rcond.Broadcast()
	c.rmu.Unlock()
}

// Accepted records that the session's owner accepted one stream the peer opened.
func (c *Conn) Accepted() {
	c.rmu.Lock()
	if c.unaccepted > 0 {
		c.unaccepted--
	}
	c.rcond.Broadcast()
	c.rmu.Unlock()
}
