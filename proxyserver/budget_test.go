package proxyserver

import (
	"context"
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

// subjectAuthenticator accepts any token and names the identity after it, so that a test
// can be two users at once.
type subjectAuthenticator struct{}

func (subjectAuthenticator) Authenticate(_ context.Context, token string) (Identity, error) {
	return Identity{Subject: "user-" + token}, nil
}

// tunnelAs authenticates with token and returns the reply, and the session when it is ok.
func (h *harness) tunnelAs(token string) (wire.Reply, *yamux.Session) {
	h.t.Helper()
	reply, conn := h.handshake(token)
	if reply.Status != wire.StatusOK {
		conn.Close()
		return reply, nil
	}
	sess, err := yamux.Client(conn, wire.MuxConfig())
	if err != nil {
		h.t.Fatal(err)
	}
	h.t.Cleanup(func() { sess.Close() })
	return reply, sess
}

// TestTunnelsPerIdentityAreLimited: one token cannot open any number of tunnels; past the
// limit the handshake is refused with a reason, while another identity still gets in.
func TestTunnelsPerIdentityAreLimited(t *testing.T) {
	h := newHarness(t, func(c *Config) { c.Authenticator = subjectAuthenticator{} })
	var open []*yamux.Session
	var refused wire.Reply
	for len(open) < 200 {
		reply, sess := h.tunnelAs("alice")
		if sess == nil {
			refused = reply
			break
		}
		open = append(open, sess)
	}
	if refused.Status != wire.StatusLimit || !strings.Contains(refused.Message, "tunnels") {
		t.Fatalf("after %d tunnels on one token: %v (%q); want the limit, saying it is about tunnels", len(open), refused.Status, refused.Message)
	}
	if len(open) != DefaultMaxTunnelsPerIdentity {
		t.Fatalf("one token opened %d tunnels, want %d (DefaultMaxTunnelsPerIdentity)", len(open), DefaultMaxTunnelsPerIdentity)
	}
	if reply, sess := h.tunnelAs("bob"); sess == nil {
		t.Fatalf("another identity refused while the first is at its limit: %v", reply.Err())
	}
	open[0].Close()
	if _, ok := waitFor(10*time.Second, func() bool { _, sess := h.tunnelAs("alice"); return sess != nil }); !ok {
		t.Fatal("closing one of alice's tunnels did not free a place")
	}
	t.Logf("one token: %d tunnels, then %q", len(open), refused.Message)
}

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
