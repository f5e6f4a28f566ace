package proxyclient

import (
	"io"
	"net"
	"sync"
	"time"

	"github.com/tessel/tessel-proxy/internal/relay"
)

type closeWriter interface{ CloseWrite() error }

// copyHalf copies src to dst until src ends, then half-closes dst so that the end of
// input travels on. It returns the read or write error that stopped it (nil at EOF); on
// an error dst is left open, so that the caller can abort it instead: a half-close would
// tell the reader that everything arrived.
func copyHalf(dst io.Writer, src io.Reader) error {
	_, err := copyBuffered(dst, src)
	if err != nil {
		return err
	}
	if cw, ok := dst.(closeWriter); ok {
		cw.CloseWrite()
	}
	return nil
}

// abort closes c with a TCP reset when it is a TCP connection, so that its program reads
// an error (ECONNRESET) rather than an end of stream it could take for a complete
// transfer.
func abort(c net.Conn) {
	if tc, ok := c.(*net.TCPConn); ok {
		tc.SetLinger(0)
	}
	c.Close()
}

func copyBuffered(dst io.Writer, src io.Reader) (int64, error) {
	// Two kernel sockets: let io.Copy use splice.
	if dt, ok := asTCP(dst); ok {
		if st, ok := asTCP(src); ok {
			return io.Copy(dt, st)
		}
	}
	return relay.Copy(dst, src, nil)
}

// workers runs short jobs on goroutines that are kept a while after their job. A relayed
// connection needs a second goroutine for its other direction; reusing one that already
// has a grown stack costs less than starting afresh for every connection.
type workers struct {
	jobs chan func()
	quit chan struct{}
	wg   sync.WaitGroup
	idle time.Duration
	once sync.Once
}

func newWorkers(idle time.Duration) *workers {
	return &workers{jobs: make(chan func()), quit: make(chan struct{}), idle: idle}
}

// Go runs f on an idle worker or a new one.
func (w *workers) Go(f func()) {
	select {
	case w.jobs <- f:
	default:
		w.wg.Add(1)
		go w.loop(f)
	}
}

func (w *workers) loop(f func()) {
	defer w.wg.Done()
	t := time.NewTimer(w.idle)
	defer t.Stop()
	for {
		f()
		t.Reset(w.idle)
		select {
		case f = <-w.jobs:
		case <-t.C:
			return
		case <-w.quit:
			return
		}
	}
}

// Stop makes idle workers exit and waits for every worker to finish its job.
func (w *workers) Stop() {
	w.once.Do(func() { close(w.quit) })
	w.wg.Wait()
}

func asTCP(x any) (*net.TCPConn, bool) {
	if t, ok := x.(*trackedConn); ok {
		x = t.Conn
	}
	c, ok := x.(*net.TCPConn)
	return c, ok
}
