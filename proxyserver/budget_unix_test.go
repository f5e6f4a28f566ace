//go:build unix

package proxyserver

import (
	"errors"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/yamux"

	"github.com/tessel/tessel-proxy/wire"
)

// TestIdentityBudgetBoundsServerMemory: one identity opens as many tunnels as it may and on
// them as many streams as it can, each to a target that never reads, and keeps sending on
// every stream. What the server then holds must stay within the identity's budget, and the
// streams past it are refused with a reason.
func TestIdentityBudgetBoundsServerMemory(t *testing.T) {
	const budget, tunnels = 48 << 20, 4
	host, port := stalledTarget(t)
	h := newHarness(t, allowLoopback, func(c *Config) {
		c.Dialer = &net.Dialer{Control: smallBufferControl}
		c.IdentityMemory = budget
		c.MaxTunnelsPerIdentity = tunnels
	})
	base := heapInUse()

	var sent atomic.Int64
	var wg sync.WaitGroup
	t.Cleanup(wg.Wait) // after the sessions close (cleanups run last first)
	sessions := make([]*yamux.Session, tunnels)
	for i := range sessions {
		sessions[i] = h.tunnel()
	}
	var streams int
	var refused wire.Reply
	for refused.Status == wire.StatusOK {
		stream, reply := open(t, sessions[streams%tunnels], wire.KindNet, host, port, nil)
		if reply.Status != wire.StatusOK {
			refused = reply
			break
		}
		streams++
		wg.Add(1)
		go func() { // the client keeps sending, until the server stops taking bytes
			defer wg.Done()
			chunk := make([]byte, 64<<10)
			for {
				n, err := stream.Write(chunk)
				sent.Add(int64(n))
				if err != nil {
					return
				}
			}
		}()
		if grown := heapInUse() - min(base, heapInUse()); grown > budget+8<<20 {
			t.Fatalf("with %d streams open the server's heap grew by %d MiB, past the identity's budget of %d MiB", streams, grown>>20, budget>>20)
		}
		if streams > 4*DefaultMaxStreams {
			t.Fatal("no stream refused")
		}
	}
	if refused.Status != wire.StatusLimit || !strings.Contains(refused.Message, "budget") {
		t.Fatalf("a stream past the budget: %v %q; want the limit, naming the budget", refused.Status, refused.Message)
	}
	// Wait until the server takes no more.
	last := int64(-1)
	for sent.Load() != last {
		last = sent.Load()
		time.Sleep(time.Second)
	}
	now := heapInUse()
	grown := now - min(base, now)
	t.Logf("%d streams on %d tunnels took %d MiB from the client; the server's heap grew by %.1f MiB (budget %d MiB, %.2f MiB a stream)",
		streams, tunnels, last>>20, float64(grown)/(1<<20), budget>>20, float64(grown)/float64(streams)/(1<<20))
	if grown > budget+8<<20 {
		t.Fatalf("the server's heap grew by %d MiB for one identity; want at most its budget, %d MiB", grown>>20, budget>>20)
	}
	var lim *wire.Error
	if !errors.As(refused.Err(), &lim) {
		t.Fatalf("the refusal is not a wire.Error: %v", refused.Err())
	}
}
