// Package relay copies bytes between the two ends of a relayed connection; the client's
// front (proxyclient) and the server's streams (proxyserver) share it.
package relay

import (
	"io"
	"sync"
)

// Copy buffers. A copy starts with a small buffer and moves to a large one once a read fills
// the small one: bulk transfers get 256 KiB copies (fewer, larger yamux frames and TLS
// records: about 560 -> 800 MB/s on loopback against io.Copy's 32 KiB), while the many idle or
// chatty connections a tunnel may hold pin only 32 KiB apiece.
const (
	SmallBuffer = 32 << 10
	LargeBuffer = 256 << 10
)

var (
	smallBuffers = sync.Pool{New: func() any { b := make([]byte, SmallBuffer); return &b }}
	largeBuffers = sync.Pool{New: func() any { b := make([]byte, LargeBuffer); return &b }}
)

// Copy copies src to dst until src ends (nil error) or either side fails, and returns the
// bytes written. afterWrite, when not nil, runs after each write with its length (to count
// bytes or flush a buffered writer); an error from it stops the copy. Copy never hands the
// copy to io.Copy's ReaderFrom/WriterTo paths and their 32 KiB buffers; callers that want
// splice between two kernel sockets use io.Copy themselves.
func Copy(dst io.Writer, src io.Reader, afterWrite func(n int) error) (int64, error) {
	pool := &smallBuffers
	bp := pool.Get().(*[]byte)
	defer func() { pool.Put(bp) }()
	buf := *bp
	var total int64
	for {
		n, rerr := src.Read(buf)
		if n > 0 {
			w, werr := dst.Write(buf[:n])
			total += int64(w)
			if werr != nil {
				return total, werr
			}
			if afterWrite != nil {
				if err := afterWrite(w); err != nil {
					return total, err
				}
			}
		}
		if rerr == io.EOF {
			return total, nil
		}
		if rerr != nil {
			return total, rerr
		}
		if n == len(buf) && pool == &smallBuffers {
			pool.Put(bp)
			pool = &largeBuffers
			bp = pool.Get().(*[]byte)
			buf = *bp
		}
	}
}
