package proxyclient

import (
	"context"
	"errors"
	"sync"
	"testing"
)

// tokenLog is a TokenSource that hands out the tokens of renew in turn, one per refusal,
// and records every call.
type tokenLog struct {
	mu     sync.Mutex
	tokens []string // tokens[0] until refused, then tokens[1], ...
	calls  []string // the refused argument of each call
}

func (l *tokenLog) source(_ context.Context, refused string) (string, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.calls = append(l.calls, refused)
	if refused != "" && len(l.tokens) > 1 && l.tokens[0] == refused {
		l.tokens = l.tokens[1:]
	}
	return l.tokens[0], nil
}

func (l *tokenLog) callLog() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]string(nil), l.calls...)
}

// Every new tunnel asks the source; a token the proxy refuses is renewed once and the
// handshake retried, so that the refusal never reaches the dial.
func TestTokenSourceAskedPerTunnelAndRenewedOnRefusal(t *testing.T) {
	srv := newTestServer(t, "token-1")
	target := newEchoTarget(t)
	src := &tokenLog{tokens: []string{"token-1", "token-2"}}
	cfg := srv.config()
	d := newTestDialer(t, cfg, "", WithTokenSource(src.source))
	if got := echoThrough(t, d, target.addr()); got != "echo:hello" {
		t.Fatalf("first tunnel: got %q", got)
	}
	// The proxy is replaced by one that accepts only a renewed token, and the old one sends
	// GoAway, as one whose token expired does.
	srv.token = "token-2"
	srv.goAway()
	eventually(t, "the client to forget the old tunnel", func() bool {
		d.tun.mu.Lock()
		defer d.tun.mu.Unlock()
		return d.tun.cur == nil
	})
	if got := echoThrough(t, d, target.addr()); got != "echo:hello" {
		t.Fatalf("after the proxy refused the old token: got %q", got)
	}
	calls := src.callLog()
	if len(calls) != 3 || calls[0] != "" || calls[1] != "" || calls[2] != "token-1" {
		t.Fatalf("token source calls (refused argument) %q, want one per tunnel and one renewal of token-1", calls)
	}
	if got := srv.handshakes(); got != 2 {
		t.Errorf("%d handshakes accepted, want 2", got)
	}
}

// A source that cannot renew the refused token: the dial fails with ErrAuthFailed, once,
// without a loop.
func TestTokenSourceThatCannotRenew(t *testing.T) {
	srv := newTestServer(t, "the-right-one")
	target := newEchoTarget(t)
	src := &tokenLog{tokens: []string{"stale"}}
	d := newTestDialer(t, srv.config(), "", WithTokenSource(src.source))
	_, err := d.DialContext(context.Background(), "tcp", target.addr())
	if !errors.Is(err, ErrAuthFailed) {
		t.Fatalf("dial with a token the proxy refuses: %v, want ErrAuthFailed", err)
	}
	if calls := src.callLog(); len(calls) != 2 || calls[1] != "stale" {
		t.Fatalf("token source calls %q, want the token and one renewal", calls)
	}
}

// A Dialer with a token source and no fixed token routes through the tunnel.
func TestTokenSourceCountsAsToken(t *testing.T) {
	srv := newTestServer(t, "x")
	d := newTestDialer(t, srv.config(), "", WithTokenSource(func(context.Context, string) (string, error) { return "x", nil }))
	if dec := d.Route("example.net"); dec.Direct {
		t.Fatalf("Route with a token source = %+v, want the tunnel", dec)
	}
}
