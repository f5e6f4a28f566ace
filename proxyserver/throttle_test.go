package proxyserver

import (
	"crypto/tls"
	"encoding/json"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"runtime"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tessel/tessel-proxy/wire"
)

// handshakeFrom runs a client handshake from local (a loopback address of its own, so that
// the server sees another source) and returns the reply.
func (h *harness) handshakeFrom(local netip.Addr, token string) (wire.Reply, error) {
	d := &net.Dialer{LocalAddr: net.TCPAddrFromAddrPort(netip.AddrPortFrom(local, 0)), Timeout: 20 * time.Second}
	conn, err := tls.DialWithDialer(d, "tcp", h.addr, &tls.Config{RootCAs: h.roots, ServerName: "127.0.0.1", MinVersion: tls.VersionTLS12})
	if err != nil {
		return wire.Reply{}, err
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(30 * time.Second))
	if err := wire.WriteHello(conn, wire.Hello{Version: wire.Version, Token: token}); err != nil {
		return wire.Reply{}, err
	}
	return wire.ReadReply(conn)
}

// TestFailedAuthenticationIsThrottledPerSource replays the attack a review found: wrong tokens,
// one after the other, from 127.0.0.1 (2,000 took 4.5 s and wrote 2,000 WARN lines), while a
// client with the right token authenticates from 127.0.0.2. The attacker gets a handful of
// tokens checked in the time it used to get hundreds, the log gets a handful of lines, and
// the good client is never delayed.
func TestFailedAuthenticationIsThrottledPerSource(t *testing.T) {
	h := newHarness(t)
	attacker, good := netip.MustParseAddr("127.0.0.1"), netip.MustParseAddr("127.0.0.2")

	// The good client's handshake time alone, to compare with the one under attack.
	baseline := timeHandshakes(t, h, good, 20)

	const attempts = 2000
	const window = 5 * time.Second // the attack stops at 2,000 tokens or after this
	var stop atomic.Bool
	var wg sync.WaitGroup
	var goodTimes []time.Duration
	wg.Add(1)
	go func() {
		defer wg.Done()
		for !stop.Load() {
			start := time.Now()
			reply, err := h.handshakeFrom(good, testToken)
			if err != nil || reply.Status != wire.StatusOK {
				t.Errorf("good client from %v during the attack: %v %v", good, reply.Err(), err)
				return
			}
			goodTimes = append(goodTimes, time.Since(start))
		}
	}()

	start := time.Now()
	var answered, refused, throttled int
	for i := 0; i < attempts && time.Since(start) < window; i++ {
		reply, err := h.handshakeFrom(attacker, fmt.Sprintf("wrong-token-%d", i))
		if err != nil {
			t.Fatalf("attempt %d: %v", i, err)
		}
		answered++
		switch {
		case reply.Status != wire.StatusAuthFailed:
			t.Fatalf("wrong token %d: status %v, want auth failed", i, reply.Status)
		case strings.Contains(reply.Message, "too many failed"):
			throttled++
		default:
			refused++
		}
	}
	elapsed := time.Since(start)
	stop.Store(true)
	wg.Wait()

	t.Logf("attacker (sequential, one source): %d wrong tokens answered in %v (%.1f/s), %d checked, %d refused unchecked; the review measured 2,000 in 4.5 s (444/s)",
		answered, elapsed.Round(time.Millisecond), float64(answered)/elapsed.Seconds(), refused, throttled)
	t.Logf("good client from another source: %d handshakes during the attack, median %v (alone: %v)",
		len(goodTimes), median(goodTimes), median(baseline))
	// Unthrottled, the loop answers hundreds (all 2,000 in 4.5 s without -race); with the
	// throttle the source gets its free attempts, then one slot per growing delay.
	if max := throttleFree + 10; refused > max {
		t.Errorf("%d wrong tokens from one source checked in %v, want at most %d", refused, elapsed.Round(time.Millisecond), max)
	}
	if len(goodTimes) == 0 {
		t.Errorf("the good client completed no handshake during the attack")
	}
	// The good client's source never entered the throttle: nothing slowed it.
	h.srv.throttle.mu.Lock()
	rec := h.srv.throttle.sources[netip.PrefixFrom(good, 32)]
	h.srv.throttle.mu.Unlock()
	if rec != nil {
		t.Errorf("the good client's source has a throttle record: %+v", rec)
	}

	h.srv.Close() // flushes the summaries still due
	var lines []string
	logged := 0 // failures in the log: one line each in full, or counted in a summary
	for _, line := range strings.Split(h.logs.String(), "\n") {
		if !strings.Contains(line, "authentication") {
			continue
		}
		lines = append(lines, line)
		var rec struct {
			Msg       string
			Checked   int `json:"checked"`
			Unchecked int `json:"refused_unchecked"`
		}
		if err := json.Unmarshal([]byte(line), &rec); err != nil {
			t.Fatalf("log line %q: %v", line, err)
		}
		if rec.Msg == "authentication failed" {
			logged++
		}
		logged += rec.Checked + rec.Unchecked
	}
	t.Logf("log lines about authentication: %d\n%s", len(lines), strings.Join(lines, "\n"))
	if len(lines) > 4 {
		t.Errorf("%d log lines about failed authentications, want a handful", len(lines))
	}
	if logged != answered {
		t.Errorf("the log accounts for %d failed authentications, want all %d", logged, answered)
	}
}

func timeHandshakes(t *testing.T, h *harness, from netip.Addr, n int) []time.Duration {
	t.Helper()
	var times []time.Duration
	for range n {
		start := time.Now()
		reply, err := h.handshakeFrom(from, testToken)
		if err != nil || reply.Status != wire.StatusOK {
			t.Fatalf("handshake from %v: %v %v", from, reply.Err(), err)
		}
		times = append(times, time.Since(start))
	}
	return times
}

func median(d []time.Duration) time.Duration {
	if len(d) == 0 {
		return 0
	}
	s := append([]time.Duration(nil), d...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	return s[len(s)/2].Round(10 * time.Microsecond)
}

// TestThrottleSlots drives the throttle's decisions with a clock of the test's own (the
// decisions are a pure function of the times given).
func TestThrottleSlots(t *testing.T) {
	th := newAuthThrottle(discardLogger())
	defer th.stop()
	a, b := netip.MustParsePrefix("192.0.2.1/32"), netip.MustParsePrefix("2001:db8:1:2::/64")
	now := time.Unix(1e9, 0)
	deadline := now.Add(10 * time.Second)

	for i := range throttleFree {
		if wait, _, ok := th.reserve(a, now, deadline); !ok || wait != 0 {
			t.Fatalf("free attempt %d: wait %v ok %v", i, wait, ok)
		}
		th.failed(a, now, discardLogger(), "authentication failed")
	}
	// Parallel attempts after the free ones get one slot each, a delay apart.
	var waits []time.Duration
	for range 4 {
		wait, _, ok := th.reserve(a, now, deadline)
		if !ok {
			t.Fatal("a slot within the deadline was refused")
		}
		waits = append(waits, wait)
	}
	want := []time.Duration{250 * time.Millisecond, 500 * time.Millisecond, 750 * time.Millisecond, time.Second}
	if fmt.Sprint(waits) != fmt.Sprint(want) {
		t.Errorf("slots of parallel attempts: %v, want %v", waits, want)
	}
	// Another source is not affected.
	if wait, _, ok := th.reserve(b, now, deadline); !ok || wait != 0 {
		t.Errorf("another source waits %v (ok %v)", wait, ok)
	}
	// Each failure doubles the delay, up to the cap; a slot past the deadline is refused
	// at once.
	for range 20 {
		th.failed(a, now, discardLogger(), "authentication failed")
	}
	if _, retry, ok := th.reserve(a, now, now.Add(time.Second)); ok || retry <= time.Second {
		t.Errorf("slot past the deadline: ok %v, retry in %v", ok, retry)
	}
	rec := th.sources[a]
	if got := delay(rec.failures); got != throttleMaxDelay {
		t.Errorf("delay after %d failures: %v, want the cap %v", rec.failures, got, throttleMaxDelay)
	}
	// Quiet time forgives: long enough, and the source is free again and forgotten.
	later := now.Add(time.Duration(rec.failures+1) * throttleForgive)
	if wait, _, ok := th.reserve(a, later, later.Add(time.Second)); !ok || wait != 0 {
		t.Errorf("after %v of quiet: wait %v ok %v", later.Sub(now), wait, ok)
	}
}

// TestThrottleTableIsBounded fails from more sources than the table holds: it stays at its
// bound, and the newest sources are the ones remembered.
func TestThrottleTableIsBounded(t *testing.T) {
	th := newAuthThrottle(discardLogger())
	defer th.stop()
	now := time.Unix(1e9, 0)
	n := throttleMaxSources * 3
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	for i := range n {
		src := netip.PrefixFrom(netip.AddrFrom4([4]byte{10, byte(i >> 16), byte(i >> 8), byte(i)}), 32)
		th.failed(src, now.Add(time.Duration(i)*time.Millisecond), discardLogger(), "authentication failed")
	}
	if got := th.size(); got > throttleMaxSources {
		t.Errorf("%d sources failed: the table holds %d, want at most %d", n, got, throttleMaxSources)
	}
	runtime.GC()
	runtime.ReadMemStats(&after)
	t.Logf("%d failing sources: the table holds %d, %d KiB of heap (%d bytes a source)", n, th.size(),
		(int64(after.HeapAlloc)-int64(before.HeapAlloc))>>10, (int64(after.HeapAlloc)-int64(before.HeapAlloc))/int64(th.size()))
}

func discardLogger() *slog.Logger { return slog.New(slog.DiscardHandler) }
