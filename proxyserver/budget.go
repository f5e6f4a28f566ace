package proxyserver

import (
	"fmt"
	"sync"

	"github.com/tessel/tessel-proxy/internal/relay"
)

// What tunnels and streams reserve from their identity's budget: the most each can make
// the server hold, whatever the client does. TestIdentityBudgetBoundsServerMemory measures
// what they hold.
const (
	// acceptQueue is how many streams a client may have opened that the server has not
	// accepted yet (muxconn.Conn.SetAcceptQueue): each may carry the 256 KiB a yamux peer
	// may send before any answer, in a buffer that can grow to twice that.
	acceptQueue = 4
	// tunnelBaseCost covers a tunnel's TLS connection and its buffers, the yamux session
	// (its send buffer grows to the largest frame, twice a relay buffer at most), the
	// coalescing buffer and the goroutines.
	tunnelBaseCost = 1 << 20
	// yamuxInitialWindow is the window every yamux stream starts with (yamux spec.md).
	yamuxInitialWindow = 256 << 10
	// streamBaseCost covers a stream's goroutines, yamux state, target connection and
	// small buffers.
	streamBaseCost = 64 << 10
)

// tunnelCost is what one tunnel reserves.
func tunnelCost() int64 {
	return tunnelBaseCost + acceptQueue*2*yamuxInitialWindow
}

// streamCost is what one stream reserves with a receive window of window bytes: yamux's
// receive buffer, which doubles as it grows, so that window bytes can take twice as much;
// a relay buffer in each direction; and the rest.
func streamCost(window int) int64 {
	return 2*int64(window) + 2*relay.LargeBuffer + streamBaseCost
}

// budgets tracks what each identity holds: its tunnels, and the bytes its tunnels and
// streams reserved.
type budgets struct {
	maxTunnels int
	limit      int64
	stream     int64 // what one stream reserves

	mu  sync.Mutex
	ids map[string]*identityUse
}

// identityUse is what one identity holds now. Its fields are guarded by budgets.mu.
type identityUse struct {
	subject  string
	tunnels  int
	streams  int
	reserved int64
}

func newBudgets(cfg Config) *budgets {
	return &budgets{
		maxTunnels: cfg.MaxTunnelsPerIdentity,
		limit:      cfg.IdentityMemory,
		stream:     streamCost(cfg.StreamWindow),
		ids:        make(map[string]*identityUse),
	}
}

// openTunnel reserves a tunnel for subject, or returns why it cannot have one: the message
// a client sees.
func (b *budgets) openTunnel(subject string) (*identityUse, string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	u := b.ids[subject]
	if u == nil {
		u = &identityUse{subject: subject}
	}
	switch {
	case u.tunnels >= b.maxTunnels:
		return nil, fmt.Sprintf("this token has %d tunnels open, the server's maximum: close some clients, or give each its own token", u.tunnels)
	case u.reserved+tunnelCost() > b.limit:
		return nil, fmt.Sprintf("this token's tunnels and streams use its memory budget on the server (%d MiB): close some connections", b.limit>>20)
	}
	u.tunnels++
	u.reserved += tunnelCost()
	b.ids[subject] = u
	return u, ""
}

// closeTunnel releases what openTunnel reserved.
func (b *budgets) closeTunnel(u *identityUse) {
	b.mu.Lock()
	defer b.mu.Unlock()
	u.tunnels--
	u.reserved -= tunnelCost()
	if u.tunnels == 0 && u.streams == 0 {
		delete(b.ids, u.subject)
	}
}

// reserveStream reserves a stream for u, or returns why it cannot have one: the message a
// client sees.
func (b *budgets) reserveStream(u *identityUse) string {
	b.mu.Lock()
	defer b.mu.Unlock()
	if u.reserved+b.stream > b.limit {
		return fmt.Sprintf("this token's %d streams on %d tunnels use its memory budget on the server (%d MiB): close some connections",
			u.streams, u.tunnels, b.limit>>20)
	}
	u.streams++
	u.reserved += b.stream
	return ""
}

// releaseStream releases what reserveStream reserved.
func (b *budgets) releaseStream(u *identityUse) {
	b.mu.Lock()
	defer b.mu.Unlock()
	u.streams--
	u.reserved -= b.stream
}
