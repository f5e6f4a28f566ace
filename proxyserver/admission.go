package proxyserver

import (
	"math/rand/v2"
	"net/netip"
	"sync"
)

// admission decides, at accept, whether a new connection may start its handshake. It
// counts the connections in their handshake (accepted, not yet authenticated) in all and
// per source, and drops new ones as sshd's MaxStartups does: all of them past max, some of
// them at random from dropStart on, and those of a source (sourceOf) that already has
// perSource.
type admission struct {
	max, perSource      int
	dropStart, dropRate int
	// chance returns a number in [0, 100); rand.IntN in production, fixed in tests.
	chance func() int

	mu       sync.Mutex
	total    int
	bySource map[netip.Prefix]int
}

func newAdmission(cfg Config) *admission {
	return &admission{
		max:       cfg.MaxHandshakes,
		perSource: cfg.MaxHandshakesPerSource,
		dropStart: cfg.HandshakeDropStart,
		dropRate:  cfg.HandshakeDropRate,
		chance:    func() int { return rand.IntN(100) },
		bySource:  make(map[netip.Prefix]int),
	}
}

// admit reports whether a connection from src may start its handshake, and if not, the
// result label that says why. An admitted connection must be released with done.
func (a *admission) admit(src netip.Prefix) (ok bool, result string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	switch {
	case a.total >= a.max:
		return false, resultHandshakeLimit
	case a.bySource[src] >= a.perSource:
		return false, resultSourceLimit
	case a.total >= a.dropStart && a.chance() < a.dropChance():
		return false, resultEarlyDrop
	}
	a.total++
	a.bySource[src]++
	return true, ""
}

// dropChance is the chance in percent of a random drop with a.total handshakes in
// progress: dropRate at dropStart, rising linearly to 100 at max. Called with a.mu held.
func (a *admission) dropChance() int {
	if a.max <= a.dropStart {
		return 0 // random drops off; max itself still applies
	}
	return a.dropRate + (100-a.dropRate)*(a.total-a.dropStart)/(a.max-a.dropStart)
}

// done releases a connection admitted from src: its handshake ended, either way.
func (a *admission) done(src netip.Prefix) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.total--
	if a.bySource[src]--; a.bySource[src] <= 0 {
		delete(a.bySource, src)
	}
}

// inProgress is the number of connections in their handshake.
func (a *admission) inProgress() int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.total
}
