package proxyserver

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"strings"
	"time"

	"github.com/hashicorp/yamux"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/tessel/tessel-proxy/wire"
)

// Defaults that Config.withDefaults fills in for zero fields.
const (
	DefaultHandshakeTimeout = 10 * time.Second
	DefaultDialTimeout      = 10 * time.Second
	DefaultMaxStreams       = 256
	// DefaultMaxHandshakes bounds the connections in their handshake at once: what a flood
	// of connections that never authenticate can hold (a goroutine and TLS state each, for
	// up to HandshakeTimeout).
	DefaultMaxHandshakes = 1024
	// DefaultStreamWindow is the receive window the server grants each stream: 1 MiB, as
	// Go's HTTP/2 server grants. A stream whose target reads slower than the client sends
	// can make the server hold about twice that (yamux's buffer grows by doubling); the
	// identity budget (IdentityMemory) bounds the sum over streams. A stream's upload
	// runs at up to StreamWindow per round trip (1 MiB at 50 ms: about 20 MB/s); on
	// loopback the window makes no measurable difference (BenchmarkUpload).
	DefaultStreamWindow = 1 << 20

	// DefaultFirstByteTimeout is how long a new connection may stay silent before its TLS
	// ClientHello begins: a connection that sends nothing holds its handshake slot this
	// long, not the whole HandshakeTimeout.
	DefaultFirstByteTimeout = 5 * time.Second
	// DefaultMaxHandshakesPerSource bounds the connections from one source (an IPv4
	// address, or an IPv6 /64) in their handshake at once, so that one host cannot fill
	// MaxHandshakes and lock every other client out.
	DefaultMaxHandshakesPerSource = 32
	// DefaultHandshakeDropRate is the chance, in percent, that a connection is dropped at
	// accept once HandshakeDropStart handshakes are in progress; it rises linearly to 100
	// at MaxHandshakes (sshd's MaxStartups start:rate:full, with start half of full).
	DefaultHandshakeDropRate = 30
	// DefaultMaxTunnelsPerIdentity bounds the tunnels one identity (one token, or one
	// OAuth subject) may have open at once. Clients that share a token share the limit.
	DefaultMaxTunnelsPerIdentity = 16
	// DefaultIdentityMemory is the memory budget of one identity: the worst case of what
	// its tunnels and streams can make the server hold (see Config.IdentityMemory).
	DefaultIdentityMemory = 256 << 20
)

// Bounds of Config.StreamWindow: yamux's own minimum, and the window clients use.
const (
	minStreamWindow = 256 << 10
	maxStreamWindow = 16 << 20
)

// Resolver turns a host name into addresses. *net.Resolver satisfies it.
type Resolver interface {
	LookupNetIP(ctx context.Context, network, host string) ([]netip.Addr, error)
}

// Dialer opens TCP connections to targets. *net.Dialer satisfies it. The server only ever
// asks it for an IP address and port ("203.0.113.7:443"), never a name, so that the address
// judged by the Policy is the one dialed.
type Dialer interface {
	DialContext(ctx context.Context, network, address string) (net.Conn, error)
}

// Config configures a Server. The zero value of every field but TLS and Authenticator is
// usable and means the documented default; New checks the rest.
type Config struct {
	// TLS holds the server certificate (Certificates or GetCertificate). Required. The
	// server makes a copy and raises MinVersion to TLS 1.2 if it is lower.
	TLS *tls.Config

	// Authenticator decides which tokens may open a tunnel. Required.
	Authenticator Authenticator

	// Policy judges every resolved target address before it is dialed. Nil is the zero
	// Policy: special-purpose ranges refused, the public Internet allowed.
	Policy *Policy

	// Resolver looks up target host names. Nil: net.DefaultResolver.
	Resolver Resolver

	// Dialer dials the judged target address. Nil: a net.Dialer.
	Dialer Dialer

	// TargetRootCAs verifies the certificates of targets of tls streams. Nil: the system
	// roots.
	TargetRootCAs *x509.CertPool

	// DisableTLSStreams makes the server refuse tls streams (wire.KindTLS) with
	// StatusDenied, so that it never sees a client's plaintext.
	DisableTLSStreams bool

	// HandshakeTimeout bounds the TLS handshake plus the Hello and its authentication,
	// counted from accept, and the time a client has to send a stream's request.
	// Default DefaultHandshakeTimeout.
	HandshakeTimeout time.Duration

	// DialTimeout bounds name resolution plus the connection to the target, plus its TLS
	// handshake for tls streams. When a name has several allowed addresses, each attempt
	// gets its share of what is left (at least 2 s), so one address that drops packets does
	// not use it all. Default DefaultDialTimeout.
	DialTimeout time.Duration

	// MaxStreams is the number of streams one tunnel may have open at once, refused ones
	// included until they are gone; past it a new stream is answered with
	// wire.StatusLimit. Default DefaultMaxStreams.
	MaxStreams int

	// MaxHandshakes is the number of accepted connections that may be in their handshake
	// (TLS, Hello, authentication) at once; a connection accepted past it is closed at once,
	// as sshd's MaxStartups does. Default DefaultMaxHandshakes.
	MaxHandshakes int

	// StreamWindow is the yamux receive window the server grants each stream: the most
	// bytes the client may send ahead of a target that reads slower (the server's buffer
	// for them can reach twice that, see IdentityMemory). Default
	// DefaultStreamWindow; 256 KiB to 16 MiB. It overrides Mux.MaxStreamWindowSize.
	StreamWindow int

	// FirstByteTimeout bounds the time from accept to the first byte of the client's TLS
	// handshake. Default DefaultFirstByteTimeout; HandshakeTimeout still bounds the rest.
	FirstByteTimeout time.Duration

	// MaxHandshakesPerSource is the number of connections from one source (an IPv4
	// address, or an IPv6 /64) that may be in their handshake at once; past it a new one
	// from that source is closed at accept. Default DefaultMaxHandshakesPerSource.
	MaxHandshakesPerSource int

	// HandshakeDropStart and HandshakeDropRate drop connections at random before
	// MaxHandshakes is reached, as sshd's MaxStartups start:rate:full does: from
	// HandshakeDropStart handshakes in progress on, a new connection is closed at accept
	// with a chance of HandshakeDropRate percent, rising linearly to 100 at MaxHandshakes.
	// Defaults: half of MaxHandshakes, and DefaultHandshakeDropRate. A start equal to
	// MaxHandshakes turns random drops off.
	HandshakeDropStart int
	HandshakeDropRate  int

	// MaxTunnelsPerIdentity is the number of tunnels one identity (Identity.Subject) may
	// have open at once; past it the handshake is answered wire.StatusLimit. Default
	// DefaultMaxTunnelsPerIdentity.
	MaxTunnelsPerIdentity int

	// IdentityMemory is the memory budget of one identity, in bytes: every tunnel and
	// every stream reserves the most it can make the server hold (a tunnel: its TLS and
	// yamux state and the streams yamux queues before they are accepted; a stream: twice
	// StreamWindow, as yamux's receive buffer grows by doubling, plus two relay buffers),
	// and a stream that would take the identity past its budget is answered
	// wire.StatusLimit. Default DefaultIdentityMemory.
	IdentityMemory int64

	// Logger receives structured logs; tokens never appear in them. Nil: logs are dropped.
	Logger *slog.Logger

	// Metrics, when not nil, is where the server registers its Prometheus collectors
	// (names start with tessel_proxy_). Use a registry of your own: New fails if the names
	// are already registered.
	Metrics prometheus.Registerer

	// WebSocketPath is the HTTP path at which the server takes tunnels over WebSocket, on
	// its TLS listeners and on ServeWebSocket's. Default DefaultWebSocketPath.
	WebSocketPath string

	// Mux configures each tunnel's yamux session. Nil: wire.MuxConfig(), which is what
	// clients use (its stream window replaced by StreamWindow); change it only to test
	// keepalive behaviour.
	Mux *yamux.Config
}

// withDefaults returns a copy of c with the zero fields set to their defaults, or an error
// naming the first field that cannot work.
func (c Config) withDefaults() (Config, error) {
	if c.TLS == nil || len(c.TLS.Certificates) == 0 && c.TLS.GetCertificate == nil && c.TLS.GetConfigForClient == nil {
		return c, errors.New("proxyserver: Config.TLS needs a certificate")
	}
	if c.Authenticator == nil {
		return c, errors.New("proxyserver: Config.Authenticator is required")
	}
	c.TLS = c.TLS.Clone()
	if c.TLS.MinVersion < tls.VersionTLS12 {
		c.TLS.MinVersion = tls.VersionTLS12
	}
	if c.Resolver == nil {
		c.Resolver = net.DefaultResolver
	}
	if c.Dialer == nil {
		c.Dialer = &net.Dialer{}
	}
	if c.HandshakeTimeout == 0 {
		c.HandshakeTimeout = DefaultHandshakeTimeout
	}
	if c.WebSocketPath == "" {
		c.WebSocketPath = DefaultWebSocketPath
	} else if !strings.HasPrefix(c.WebSocketPath, "/") {
		return c, fmt.Errorf("proxyserver: Config.WebSocketPath %q must start with /", c.WebSocketPath)
	}
	if c.DialTimeout == 0 {
		c.DialTimeout = DefaultDialTimeout
	}
	if c.MaxStreams == 0 {
		c.MaxStreams = DefaultMaxStreams
	}
	if c.MaxHandshakes == 0 {
		c.MaxHandshakes = DefaultMaxHandshakes
	}
	if c.StreamWindow == 0 {
		c.StreamWindow = DefaultStreamWindow
	}
	if c.FirstByteTimeout == 0 {
		c.FirstByteTimeout = DefaultFirstByteTimeout
	}
	if c.MaxHandshakesPerSource == 0 {
		c.MaxHandshakesPerSource = DefaultMaxHandshakesPerSource
	}
	if c.HandshakeDropStart == 0 {
		c.HandshakeDropStart = max(1, c.MaxHandshakes/2)
	}
	if c.HandshakeDropRate == 0 {
		c.HandshakeDropRate = DefaultHandshakeDropRate
	}
	if c.MaxTunnelsPerIdentity == 0 {
		c.MaxTunnelsPerIdentity = DefaultMaxTunnelsPerIdentity
	}
	if c.IdentityMemory == 0 {
		c.IdentityMemory = DefaultIdentityMemory
	}
	switch {
	case c.HandshakeTimeout < 0:
		return c, fmt.Errorf("proxyserver: HandshakeTimeout %v is negative", c.HandshakeTimeout)
	case c.DialTimeout < 0:
		return c, fmt.Errorf("proxyserver: DialTimeout %v is negative", c.DialTimeout)
	case c.MaxStreams < 0:
		return c, fmt.Errorf("proxyserver: MaxStreams %d is negative", c.MaxStreams)
	case c.MaxHandshakes < 0:
		return c, fmt.Errorf("proxyserver: MaxHandshakes %d is negative", c.MaxHandshakes)
	case c.FirstByteTimeout < 0:
		return c, fmt.Errorf("proxyserver: FirstByteTimeout %v is negative", c.FirstByteTimeout)
	case c.MaxHandshakesPerSource < 0:
		return c, fmt.Errorf("proxyserver: MaxHandshakesPerSource %d is negative", c.MaxHandshakesPerSource)
	case c.HandshakeDropStart < 0 || c.HandshakeDropStart > c.MaxHandshakes:
		return c, fmt.Errorf("proxyserver: HandshakeDropStart %d outside 1..MaxHandshakes (%d)", c.HandshakeDropStart, c.MaxHandshakes)
	case c.HandshakeDropRate < 0 || c.HandshakeDropRate > 100:
		return c, fmt.Errorf("proxyserver: HandshakeDropRate %d outside 0..100 (percent)", c.HandshakeDropRate)
	case c.MaxTunnelsPerIdentity < 0:
		return c, fmt.Errorf("proxyserver: MaxTunnelsPerIdentity %d is negative", c.MaxTunnelsPerIdentity)
	case c.IdentityMemory < 0:
		return c, fmt.Errorf("proxyserver: IdentityMemory %d is negative", c.IdentityMemory)
	case c.StreamWindow < minStreamWindow || c.StreamWindow > maxStreamWindow:
		return c, fmt.Errorf("proxyserver: StreamWindow %d outside %d..%d", c.StreamWindow, minStreamWindow, maxStreamWindow)
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.Mux == nil {
		c.Mux = wire.MuxConfig()
	} else {
		c.Mux = c.Mux.Clone()
	}
	// yamux has no window for the whole session: each stream's window is all that bounds
	// what a client can make the server hold, so it is the server's choice, not the client's.
	c.Mux.MaxStreamWindowSize = uint32(c.StreamWindow)
	if c.Mux.AcceptBacklog < c.MaxStreams {
		// yamux resets streams that arrive while its backlog is full; let a burst up to
		// MaxStreams wait for the accept loop, so that past it the client gets StatusLimit.
		c.Mux.AcceptBacklog = c.MaxStreams
	}
	if err := yamux.VerifyConfig(c.Mux); err != nil {
		return c, fmt.Errorf("proxyserver: Config.Mux: %w", err)
	}
	return c, nil
}
