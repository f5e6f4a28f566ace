// Package proxyclient is the client side of a tessel-proxy tunnel: a Dialer shaped like
// net.Dialer that routes each connection either directly or through one shared,
// authenticated yamux-over-TLS tunnel to the proxy server, and a local Front (SOCKS5 and
// HTTP proxy on loopback) through which `tessel-proxy run` points a child program at it.
package proxyclient

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"strconv"
	"time"

	"github.com/hashicorp/yamux"
	"github.com/tessel/tessel-proxy/internal/hostport"
	"github.com/tessel/tessel-proxy/proxyconfig"
	"github.com/tessel/tessel-proxy/wire"
)

// DefaultHandshakeTimeout bounds opening a tunnel: TCP connect, TLS handshake, Hello and
// Reply together.
const DefaultHandshakeTimeout = 15 * time.Second

// Decision is how a connection to a host is routed, and why.
type Decision struct {
	Direct bool   // true: connect directly; false: through the tunnel
	Reason string // for people: which rule decided
}

// Reasons a Decision gives, in the order the rules are checked.
const (
	ReasonNoToken   = "no token configured"
	ReasonForced    = "forced direct"
	ReasonTLSDirect = "tls dialer and PROXY_TRUSTED is off"
	ReasonTunnel    = "tunnel"
)

type directKey struct{}

// WithDirect returns a context that makes DialContext and DialTLSContext connect directly,
// never through the tunnel.
func WithDirect(ctx context.Context) context.Context {
	return context.WithValue(ctx, directKey{}, true)
}

func forcedDirect(ctx context.Context) bool {
	v, _ := ctx.Value(directKey{}).(bool)
	return v
}

// Dialer connects to hosts directly or through the tunnel, per the routing rules. Its
// DialContext drops into http.Transport.DialContext. It opens the tunnel lazily on the first
// proxied connection and keeps at most one at a time. A Dialer is safe for concurrent use;
// Close releases the tunnel and every goroutine it started.
type Dialer struct {
	cfg    proxyconfig.Config
	token  string
	tokens TokenSource // when nil, every tunnel authenticates with token
	log    *slog.Logger
	direct net.Dialer
	tlsCfg *tls.Config // for TLS connections this machine makes itself
	tun    *manager
}

// Option adjusts a Dialer.
type Option func(*Dialer)

// TokenSource gives the token that authenticates a new tunnel. A Dialer with one calls it
// each time it opens a tunnel, so that a long-lived Dialer uses renewed tokens: an OAuth
// access token expires, and the proxy closes a tunnel when its token does. refused is ""
// normally; right after the proxy refused the token the source gave, it is that token, and
// the source should return a renewed one (a refresh), not the same: the Dialer then tries
// once more with it before the refusal reaches the caller.
type TokenSource func(ctx context.Context, refused string) (string, error)

// WithTokenSource makes the Dialer take each tunnel's token from src instead of cfg.Token.
// Routing treats a Dialer with a source as one with a token.
func WithTokenSource(src TokenSource) Option {
	return func(dl *Dialer) { dl.tokens = src }
}

// WithHandshakeTimeout bounds opening a tunnel (DefaultHandshakeTimeout when not given).
func WithHandshakeTimeout(d time.Duration) Option {
	return func(dl *Dialer) { dl.tun.handshakeTimeout = d }
}

// WithMuxConfig replaces wire.MuxConfig() for the tunnel's yamux session, e.g. to detect a
// dead tunnel faster. The window size is part of the protocol; change it only in tests.
func WithMuxConfig(c *yamux.Config) Option {
	return func(dl *Dialer) { dl.tun.muxConfig = c }
}

// WithTLSConfig sets the TLS configuration DialTLSContext uses when it connects directly
// (ServerName is filled in per dial when empty). The default verifies against the system roots.
func WithTLSConfig(c *tls.Config) Option {
	return func(dl *Dialer) { dl.tlsCfg = c }
}

// NewDialer returns a Dialer for cfg that authenticates tunnels with cfg.Token, the one place
// the token comes from, or with the tokens of WithTokenSource. No token and no source makes
// every connection direct (no token, no proxy).
// log receives routing decisions and tunnel events at debug level; when nil, they go to
// stderr if cfg.Debug (_PROXY_DBG) is set and nowhere otherwise.
func NewDialer(cfg proxyconfig.Config, log *slog.Logger, opts ...Option) *Dialer {
	if log == nil {
		var w io.Writer = io.Discard
		if cfg.Debug {
			w = os.Stderr
		}
		log = slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	d := &Dialer{cfg: cfg, token: cfg.Token, log: log}
	d.direct.KeepAlive = 30 * time.Second
	d.tun = newManager(d)
	for _, o := range opts {
		o(d)
	}
	return d
}

func (d *Dialer) hasToken() bool { return d.token != "" || d.tokens != nil }

// tokenFor is the token for a new tunnel: the source's, or the fixed one.
func (d *Dialer) tokenFor(ctx context.Context, refused string) (string, error) {
	if d.tokens == nil {
		return d.token, nil
	}
	token, err := d.tokens(ctx, refused)
	if err != nil {
		return "", fmt.Errorf("get a token for the tunnel: %w", err)
	}
	if token == "" {
		return "", errors.New("get a token for the tunnel: the token source gave an empty token")
	}
	return token, nil
}

// ProxyAddr is the proxy server's host:port.
func (d *Dialer) ProxyAddr() string {
	return net.JoinHostPort(d.cfg.Host, strconv.Itoa(d.cfg.Port))
}

// Transport says, for people, how the tunnel's own connection is made: the proxy's
// host:port or wss:// URL, and the upstream HTTP proxy it goes through, if any (its password
// masked).
func (d *Dialer) Transport() string {
	return d.transport(0).String()
}

func (d *Dialer) transport(timeout time.Duration) *transport {
	return &transport{cfg: d.cfg, direct: &d.direct, timeout: timeout}
}

// Route reports how DialContext would connect to host (a name or IP literal, IPv6 with or
// without brackets, no port). It is the function DialContext itself uses.
func (d *Dialer) Route(host string) Decision {
	return d.decide(context.Background(), host, false)
}

// RouteTLS reports how DialTLSContext would connect to host.
func (d *Dialer) RouteTLS(host string) Decision {
	return d.decide(context.Background(), host, true)
}

func (d *Dialer) decide(ctx context.Context, host string, viaTLS bool) Decision {
	host, _ = hostport.Unbracket(host)
	switch {
	case !d.hasToken():
		return Decision{Direct: true, Reason: ReasonNoToken}
	case forcedDirect(ctx):
		return Decision{Direct: true, Reason: ReasonForced}
	case viaTLS && !d.cfg.Trusted:
		return Decision{Direct: true, Reason: ReasonTLSDirect}
	}
	if entry, ok := d.cfg.Local.Match(host); ok {
		return Decision{Direct: true, Reason: fmt.Sprintf("PROXY_LOCAL entry %s matches", entry)}
	}
	return Decision{Direct: false, Reason: ReasonTunnel}
}

// DialContext connects to addr (host:port) on network "tcp", "tcp4" or "tcp6", directly
// or through the tunnel. Through the tunnel the host is sent unresolved and the proxy's
// refusal comes back as a *wire.Error (errors.Is(err, ErrRefused) and the like). The
// returned connection supports CloseWrite (half-close) and deadlines.
func (d *Dialer) DialContext(ctx context.Context, network, addr string) (net.Conn, error) {
	return d.DialEarly(ctx, network, addr, nil)
}

// Dial is DialContext with context.Background.
func (d *Dialer) Dial(network, addr string) (net.Conn, error) {
	return d.DialContext(context.Background(), network, addr)
}

// DialEarly is DialContext that also sends early as the connection's first bytes. Through
// the tunnel they travel in the same write as the stream request, which saves a round trip
// when the caller already holds what it will send (an HTTP request head).
func (d *Dialer) DialEarly(ctx context.Context, network, addr string, early []byte) (net.Conn, error) {
	host, port, err := splitAddr(network, addr)
	if err != nil {
		return nil, err
	}
	dec := d.decide(ctx, host, false)
	d.log.Debug("route", "host", host, "port", port, "direct", dec.Direct, "reason", dec.Reason)
	if dec.Direct {
		c, err := d.direct.DialContext(ctx, network, addr)
		if err != nil {
			return nil, err
		}
		if len(early) > 0 {
			if _, err := c.Write(early); err != nil {
				c.Close()
				return nil, err
			}
		}
		return c, nil
	}
	return d.tun.dialStream(ctx, wire.KindNet, host, port, early)
}

// DialTLSContext connects to addr with TLS, for http.Transport.DialTLSContext. When
// PROXY_TRUSTED is on and the host is not local, the proxy makes the TLS connection
// (stream kind tls, verified against the proxy's roots) and the returned connection carries
// plaintext; otherwise this machine makes the TLS connection itself, directly to the
// target: a TLS dial never rides the tunnel unless the proxy is trusted.
func (d *Dialer) DialTLSContext(ctx context.Context, network, addr string) (net.Conn, error) {
	host, port, err := splitAddr(network, addr)
	if err != nil {
		return nil, err
	}
	dec := d.decide(ctx, host, true)
	d.log.Debug("route", "host", host, "port", port, "tls", true, "direct", dec.Direct, "reason", dec.Reason)
	if !dec.Direct {
		return d.tun.dialStream(ctx, wire.KindTLS, host, port, nil)
	}
	cfg := &tls.Config{MinVersion: tls.VersionTLS12}
	if d.tlsCfg != nil {
		cfg = d.tlsCfg.Clone()
	}
	if cfg.ServerName == "" {
		cfg.ServerName = host
	}
	td := tls.Dialer{NetDialer: &d.direct, Config: cfg}
	return td.DialContext(ctx, network, addr)
}

// Connect opens the tunnel now instead of on the first proxied dial, so that a wrong token,
// an unreachable proxy or an untrusted certificate shows up at once.
func (d *Dialer) Connect(ctx context.Context) error {
	if !d.hasToken() {
		return fmt.Errorf("no token configured")
	}
	t, err := d.tun.get(ctx)
	if err != nil {
		return err
	}
	d.tun.putBack(t)
	return nil
}

// Close closes the tunnel (erroring every connection on it) and waits for the Dialer's
// goroutines to end. Later dials through the tunnel fail with ErrClosed; direct dials
// still work.
func (d *Dialer) Close() error {
	d.tun.close()
	return nil
}

func splitAddr(network, addr string) (string, uint16, error) {
	switch network {
	case "tcp", "tcp4", "tcp6":
	default:
		return "", 0, fmt.Errorf("dial %s %s: network %q not supported (tcp only)", network, addr, network)
	}
	host, ps, err := net.SplitHostPort(addr)
	if err != nil {
		return "", 0, fmt.Errorf("dial %s: %w", addr, err)
	}
	port, err := strconv.ParseUint(ps, 10, 16)
	if err != nil {
		p, lerr := net.LookupPort(network, ps)
		if lerr != nil {
			return "", 0, fmt.Errorf("dial %s: bad port %q", addr, ps)
		}
		port = uint64(p)
	}
	if port == 0 || host == "" {
		return "", 0, fmt.Errorf("dial %s: need a host and a port 1..65535", addr)
	}
	return host, uint16(port), nil
}
