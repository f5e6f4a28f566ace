package wire

import (
	"encoding/binary"
	"net"
	"sync"
)

// yamux frame layout (yamux spec.md): version, type, flags, stream id, length; a data frame's
// body of length bytes follows its header.
const (
	yamuxHeaderSize = 12
	yamuxTypeData   = 0
	yamuxTypeWindow = 1
	yamuxFlagRST    = 8
)

// Resetter sits between a yamux session and the connection it runs over, on both ends of a
// tunnel, and sends the one frame hashicorp/yamux does not send on request: RST for one stream
// (spec.md, "Resets"), which the peer's yamux turns into an error on every read and write of
// that stream. It follows the frames the session writes, so that a reset never lands inside
// one. The session writes from a single goroutine; Reset may be called from any.
type Resetter struct {
	net.Conn
	mu      sync.Mutex
	header  [yamuxHeaderSize]byte
	have    int // bytes of the current header written so far
	body    int // bytes of the current frame's body still to come
	pending []byte
}

// NewResetter wraps c, the connection a yamux session is about to run over.
func NewResetter(c net.Conn) *Resetter { return &Resetter{Conn: c} }

// Write passes yamux's writes on, and sends the resets asked for meanwhile as soon as a
// frame is complete.
func (r *Resetter) Write(p []byte) (int, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	n, err := r.Conn.Write(p)
	r.follow(p[:n])
	if err == nil && r.have == 0 && r.body == 0 && len(r.pending) > 0 {
		err = r.flushLocked()
	}
	return n, err
}

// follow advances the frame tracking over p, bytes just written.
func (r *Resetter) follow(p []byte) {
	for len(p) > 0 {
		if r.body > 0 {
			k := min(r.body, len(p))
			r.body -= k
			p = p[k:]
			continue
		}
		k := copy(r.header[r.have:], p)
		r.have += k
		p = p[k:]
		if r.have == yamuxHeaderSize {
			r.have = 0
			if r.header[1] == yamuxTypeData {
				r.body = int(binary.BigEndian.Uint32(r.header[8:12]))
			}
		}
	}
}

func (r *Resetter) flushLocked() error {
	frames := r.pending
	r.pending = nil
	_, err := r.Conn.Write(frames)
	return err
}

// Reset sends RST for the stream with id, now when no frame is half-written, else right after
// the frame that is. Frames the session wrote before Reset was called go first, so data a
// stream sent before its reset arrives before it. The caller then closes its own end of the
// stream (the peer discards the FIN of a stream it has reset).
func (r *Resetter) Reset(id uint32) error {
	var frame [yamuxHeaderSize]byte
	frame[1] = yamuxTypeWindow
	binary.BigEndian.PutUint16(frame[2:4], yamuxFlagRST)
	binary.BigEndian.PutUint32(frame[4:8], id)
	r.mu.Lock()
	defer r.mu.Unlock()
	r.pending = append(r.pending, frame[:]...)
	if r.have != 0 || r.body != 0 {
		return nil
	}
	return r.flushLocked()
}
