package proxyserver

import (
	"context"
	"strings"
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
