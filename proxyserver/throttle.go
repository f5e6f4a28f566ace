package proxyserver

import (
	"context"
	"fmt"
	"log/slog"
	"net/netip"
	"sync"
	"time"
)

// How failed authentications slow their source down. A source's first throttleFree
// failures cost nothing (a mistyped token, a script retrying); after them every token it
// sends waits for a slot: the slots are throttleBaseDelay apart after the free failures and
// twice as far apart after each further failure, up to throttleMaxDelay (one token checked
// every 8 s). A source is forgiven one failure per throttleForgive without a failure, and
// forgotten once it has none left.
const (
	throttleFree      = 5
	throttleBaseDelay = 250 * time.Millisecond
	throttleMaxDelay  = 8 * time.Second
	throttleForgive   = 30 * time.Second
	// throttleMaxSources bounds the table (about 180 bytes a source: under 1 MiB). When it
	// is full, a new source takes the place of the one that failed longest ago.
	throttleMaxSources = 4096
	// throttleLogInterval is how often the failures of one source are summarised in the
	// log: its first failure is logged in full, the next ones as one line an interval.
	throttleLogInterval = 10 * time.Second
)

// resultAuthThrottled is the tessel_proxy_tunnels_total result of a connection refused
// without its token being checked, because its source failed too often.
const resultAuthThrottled = "auth_throttled"

// authThrottle keeps, per source network (an IPv4 address, an IPv6 /64), the failed
// authentications of the recent past, delays the source's next tokens accordingly and
// summarises its failures in the log. A source's state never affects another source.
type authThrottle struct {
	log *slog.Logger

	mu       sync.Mutex
	sources  map[netip.Prefix]*failureRecord
	flush    *time.Timer // armed while some source has an open log interval
	prunedAt time.Time
	stopped  bool
}

// failureRecord is one source's state.
type failureRecord struct {
	failures  int       // recent failures, less one per throttleForgive since last
	last      time.Time // last failure
	notBefore time.Time // the next token from this source is checked no earlier

	// The open log interval: started at the logged failure, zero when none is open.
	logFrom   time.Time
	unlogged  int // failures since logFrom not logged yet
	throttled int // attempts refused unchecked since logFrom
}

func newAuthThrottle(log *slog.Logger) *authThrottle {
	return &authThrottle{log: log, sources: make(map[netip.Prefix]*failureRecord)}
}

// sourceOf is the network a client counts against: its IPv4 address, or the /64 of its
// IPv6 address (what one subscriber gets). The client is the tunnel's source: the TCP peer,
// or behind a trusted reverse proxy the client it names (ws.go). Clients without an address
// (a listener of a kind without addresses) all share the zero prefix.
func sourceOf(addr netip.Addr) netip.Prefix {
	if !addr.IsValid() {
		return netip.Prefix{}
	}
	addr = addr.Unmap().WithZone("")
	bits := 32
	if addr.Is6() {
		bits = 64
	}
	p, err := addr.Prefix(bits)
	if err != nil {
		return netip.Prefix{}
	}
	return p
}

// describeSource writes a source for logs and messages: "192.0.2.7", "2001:db8:1:2::/64".
func describeSource(src netip.Prefix) string {
	if src.IsSingleIP() {
		return src.Addr().String()
	}
	if !src.IsValid() {
		return "unknown"
	}
	return src.String()
}

// decay forgives rec the failures that throttleForgive periods of quiet earn it.
func (rec *failureRecord) decay(now time.Time) {
	if rec.failures == 0 {
		return
	}
	forgiven := int(now.Sub(rec.last) / throttleForgive)
	if forgiven <= 0 {
		return
	}
	rec.failures = max(0, rec.failures-forgiven)
	rec.last = rec.last.Add(time.Duration(forgiven) * throttleForgive)
}

// delay is the distance between two checked tokens for a source with failures failures.
func delay(failures int) time.Duration {
	if failures < throttleFree {
		return 0
	}
	steps := failures - throttleFree
	if steps >= 16 {
		return throttleMaxDelay
	}
	return min(throttleBaseDelay<<steps, throttleMaxDelay)
}

// reserve decides, at now, when a token from src may be checked: after wait, or not at all
// before deadline (ok false: refuse it unchecked; retryIn says when its slot would be). A
// source past its free failures gets one slot per delay, so that connections in parallel
// gain it nothing; a slot after deadline is not taken, so no connection waits in vain.
func (th *authThrottle) reserve(src netip.Prefix, now, deadline time.Time) (wait, retryIn time.Duration, ok bool) {
	th.mu.Lock()
	defer th.mu.Unlock()
	rec := th.sources[src]
	if rec == nil {
		return 0, 0, true
	}
	rec.decay(now)
	d := delay(rec.failures)
	if d == 0 {
		return 0, 0, true
	}
	start := now
	if rec.notBefore.After(now) {
		start = rec.notBefore
	}
	if start.After(deadline) {
		rec.throttled++
		th.armFlushLocked(rec, now)
		return 0, start.Sub(now), false
	}
	rec.notBefore = start.Add(d)
	return start.Sub(now), 0, true
}

// wait holds a connection from src until its token may be checked, and returns nil then.
// When its slot is past ctx's deadline it returns at once an error that says when to try
// again; when ctx ends first, ctx's error.
func (th *authThrottle) wait(ctx context.Context, src netip.Prefix) error {
	deadline, ok := ctx.Deadline()
	if !ok {
		deadline = time.Now().Add(throttleMaxDelay)
	}
	wait, retryIn, ok := th.reserve(src, time.Now(), deadline)
	if !ok {
		return &throttledError{retryIn: retryIn}
	}
	if wait <= 0 {
		return nil
	}
	timer := time.NewTimer(wait)
	defer timer.Stop()
	select {
	case <-timer.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// throttledError is a refusal without a check.
type throttledError struct{ retryIn time.Duration }

func (e *throttledError) Error() string {
	return fmt.Sprintf("too many failed authentications from this address: try again in %v",
		max(e.retryIn.Round(time.Second), time.Second))
}

// failed records a failed authentication from src at now and logs it: in full (on log,
// with attrs) when src has no log interval open, else as a count for the summary.
func (th *authThrottle) failed(src netip.Prefix, now time.Time, log *slog.Logger, msg string, attrs ...any) {
	th.mu.Lock()
	rec := th.sources[src]
	if rec == nil {
		rec = th.addLocked(src, now)
	}
	rec.decay(now)
	rec.failures++
	rec.last = now
	if d := delay(rec.failures); d > 0 && rec.notBefore.Before(now.Add(d)) {
		rec.notBefore = now.Add(d)
	}
	logFull := rec.logFrom.IsZero() && !th.stopped
	if logFull {
		rec.logFrom = now
	} else {
		rec.unlogged++
	}
	th.armFlushLocked(rec, now)
	th.mu.Unlock()
	if logFull {
		log.Warn(msg, attrs...)
	}
}

// addLocked makes room for src and adds it. th.mu is held.
func (th *authThrottle) addLocked(src netip.Prefix, now time.Time) *failureRecord {
	if len(th.sources) >= throttleMaxSources && now.Sub(th.prunedAt) >= time.Second {
		th.pruneLocked(now)
	}
	if len(th.sources) >= throttleMaxSources {
		// Evict the source that failed longest ago among a few taken at random (map order),
		// as Redis approximates LRU: a flood from many sources costs a constant per source,
		// not a walk of the table.
		var oldest netip.Prefix
		var oldestRec *failureRecord
		sampled := 0
		for p, rec := range th.sources {
			if oldestRec == nil || rec.last.Before(oldestRec.last) {
				oldest, oldestRec = p, rec
			}
			if sampled++; sampled == 8 {
				break
			}
		}
		th.summariseLocked(oldest, oldestRec, now)
		delete(th.sources, oldest)
	}
	rec := &failureRecord{}
	th.sources[src] = rec
	return rec
}

// pruneLocked forgets the sources that have been forgiven everything and have nothing left
// to log. th.mu is held.
func (th *authThrottle) pruneLocked(now time.Time) {
	th.prunedAt = now
	for p, rec := range th.sources {
		rec.decay(now)
		if rec.failures == 0 && !rec.notBefore.After(now) && rec.logFrom.IsZero() {
			delete(th.sources, p)
		}
	}
}

// armFlushLocked makes sure the summary timer runs while rec has an open log interval.
func (th *authThrottle) armFlushLocked(rec *failureRecord, now time.Time) {
	if rec.logFrom.IsZero() {
		rec.logFrom = now
	}
	if th.flush == nil && !th.stopped {
		th.flush = time.AfterFunc(throttleLogInterval, th.flushSummaries)
	}
}

// flushSummaries logs one line for each source that failed since its last line, closes
// the intervals of the sources that did not, forgets forgiven sources, and rearms itself
// while an interval is open.
func (th *authThrottle) flushSummaries() {
	th.mu.Lock()
	defer th.mu.Unlock()
	th.flush = nil
	now := time.Now()
	open := false
	for p, rec := range th.sources {
		if rec.logFrom.IsZero() {
			continue
		}
		if !th.summariseLocked(p, rec, now) {
			rec.logFrom = time.Time{}
			continue
		}
		rec.logFrom = now
		open = true
	}
	th.pruneLocked(now)
	if open && !th.stopped {
		th.flush = time.AfterFunc(throttleLogInterval, th.flushSummaries)
	}
}

// summariseLocked logs what rec counted since its interval began, if anything, and
// reports whether it did.
func (th *authThrottle) summariseLocked(src netip.Prefix, rec *failureRecord, now time.Time) bool {
	if rec.unlogged == 0 && rec.throttled == 0 {
		return false
	}
	period := now.Sub(rec.logFrom).Round(time.Second)
	th.log.Warn(fmt.Sprintf("%d failed authentications from %s in the last %v", rec.unlogged+rec.throttled, describeSource(src), period),
		"source", describeSource(src), "checked", rec.unlogged, "refused_unchecked", rec.throttled,
		"period", period, "next_check_in", max(0, rec.notBefore.Sub(now)).Round(time.Millisecond))
	rec.unlogged, rec.throttled = 0, 0
	return true
}

// stop logs the summaries still due and stops the timer: the server is closing.
func (th *authThrottle) stop() {
	th.mu.Lock()
	defer th.mu.Unlock()
	th.stopped = true
	if th.flush != nil {
		th.flush.Stop()
		th.flush = nil
	}
	now := time.Now()
	for p, rec := range th.sources {
		if !rec.logFrom.IsZero() {
			th.summariseLocked(p, rec, now)
		}
	}
}

// size is the number of sources the throttle holds.
func (th *authThrottle) size() int {
	th.mu.Lock()
	defer th.mu.Unlock()
	return len(th.sources)
}
