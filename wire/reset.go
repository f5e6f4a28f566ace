package wire

import (
	"encoding/binary"
	"net"
	"sync"
	"time"

	"github.com/hashicorp/yamux"
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

	mu     sync.Mutex // held by whoever writes to Conn
	header [yamuxHeaderSize]byte
	have   int // bytes of the current header written so far
	body   int // bytes of the current frame's body still to come

	pendingMu sync.Mutex
	pending   []byte // RST frames not sent yet
}

// NewResetter wraps c, the connection a yamux session is about to run over.
func NewResetter(c net.Conn) *Resetter { return &Resetter{Conn: c} }

// Write passes yamux's writes on. Resets asked for meanwhile go out at the first frame
// boundary: before p when p starts a frame, else right after the frame p completes.
func (r *Resetter) Write(p []byte) (int, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if err := r.flushLocked(); err != nil {
		return 0, err
	}
	n, err := r.Conn.Write(p)
	r.follow(p[:n])
	if err == nil {
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

// flushLocked sends the pending resets when no frame is half-written. Called with r.mu held.
func (r *Resetter) flushLocked() error {
	if r.have != 0 || r.body != 0 {
		return nil
	}
	r.pendingMu.Lock()
	frames := r.pending
	r.pending = nil
	r.pendingMu.Unlock()
	if len(frames) == 0 {
		return nil
	}
	_, err := r.Conn.Write(frames)
	return err
}

// Reset sends RST for the stream with id: at once when no frame is half-written, else right
// after the frame that is, and in any case before any frame the session writes after Reset
// returns (the stream's FIN, when the caller then closes it: the peer discards the FIN of a
// stream it has reset). Frames the session wrote before go first, so that data a stream sent
// before its reset arrives before it. Reset does not wait for the write: a connection whose
// path is dead may block writes for as long as TCP retries.
func (r *Resetter) Reset(id uint32) {
	var frame [yamuxHeaderSize]byte
	frame[1] = yamuxTypeWindow
	binary.BigEndian.PutUint16(frame[2:4], yamuxFlagRST)
	binary.BigEndian.PutUint32(frame[4:8], id)
	r.pendingMu.Lock()
	r.pending = append(r.pending, frame[:]...)
	r.pendingMu.Unlock()
	go func() {
		r.mu.Lock()
		defer r.mu.Unlock()
		_ = r.flushLocked() // a failed write fails the session's next one too
	}()
}

// ResetStream ends st with a reset: RST for it (see Reset), then its own Close, and a read
// deadline that has passed, so that a read of st blocked elsewhere returns. It does not read
// st itself: two reads of one yamux stream at once can deadlock inside yamux. yamux keeps a
// stream it closed, with what it has buffered, until the peer's FIN, which never comes for a
// reset stream, or until StreamCloseTimeout: a caller that can also drops st from its own
// session (internal/muxconn's Conn.ResetStream).
func (r *Resetter) ResetStream(st *yamux.Stream) {
	r.Reset(st.StreamID())
	st.Close()
	_ = st.SetReadDeadline(time.Now())
	st.Shrink()
}
