// Package proxyserver is the tessel-proxy server: it accepts TLS tunnels, authenticates them,
// and for each stream a client opens, resolves the target itself, judges the resolved address
// against a destination policy, dials it, and relays bytes (or, for tls streams, plaintext
// of a TLS connection it makes) in both directions, half-closes included. The wire format is
// package wire's; see wire/spec.md.
package proxyserver

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/yamux"

	"github.com/tessel/tessel-proxy/internal/muxconn"
	"github.com/tessel/tessel-proxy/wire"
)

// ErrServerClosed is what Serve returns after Shutdown or Close.
var ErrServerClosed = errors.New("proxyserver: server closed")

// Server serves tunnels. Create it with New; it may Serve several listeners at once.
type Server struct {
	cfg      Config
	m        *metrics
	log      *slog.Logger
	throttle *authThrottle // failed authentications per source
	own      *ownAddrs     // this machine's addresses, refused as targets

	// ctx is cancelled by Close (and by Shutdown when its context ends), which aborts
	// authentications and dials in flight.
	ctx    context.Context
	cancel context.CancelFunc

	mu        sync.Mutex
	closing   bool
	listeners map[net.Listener]struct{}
	tunnels   map[*tunnel]struct{}
	web       *webFront      // WebSocket tunnels (ws.go)
	wg        sync.WaitGroup // one per tunnel goroutine

	admission *admission // connections accepted and not yet authenticated
	budgets   *budgets   // what each identity holds

	lastTunnelID atomic.Uint64
	limitWarned  atomic.Int64 // unix seconds of the last handshake-limit warning
}

// warnHandshakeLimit logs that connections are being dropped at MaxHandshakes, at most once
// a minute: in a flood, one line per dropped connection would flood the log as well (the
// metric counts every one).
func (s *Server) warnHandshakeLimit(result string, src netip.Prefix) {
	now := time.Now().Unix()
	last := s.limitWarned.Load()
	if now-last < 60 || !s.limitWarned.CompareAndSwap(last, now) {
		return
	}
	s.log.Warn("dropping new connections: too many handshakes in progress",
		"in_progress", s.admission.inProgress(), "max_handshakes", s.cfg.MaxHandshakes,
		"max_per_source", s.cfg.MaxHandshakesPerSource, "source", describeSource(src), "reason", result,
		"metric", "tessel_proxy_tunnels_total{result=~\"handshake_limit|source_limit|early_drop\"}")
}

// New checks cfg, fills in its defaults, and registers the metrics. The server does
// nothing until Serve.
func New(cfg Config) (*Server, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	m, err := newMetrics(cfg.Metrics)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(context.Background())
	s := &Server{
		cfg:       cfg,
		m:         m,
		log:       cfg.Logger,
		throttle:  newAuthThrottle(cfg.Logger),
		own:       newOwnAddrs(net.InterfaceAddrs, cfg.Logger),
		ctx:       ctx,
		cancel:    cancel,
		listeners: make(map[net.Listener]struct{}),
		tunnels:   make(map[*tunnel]struct{}),
		admission: newAdmission(cfg),
		budgets:   newBudgets(cfg),
	}
	s.web = newWebFront(s)
	return s, nil
}

// Serve accepts TCP connections on ln and serves each as a tunnel: TLS handshake, Hello,
// authentication, then a yamux session whose streams it relays. It returns ErrServerClosed
// after Shutdown or Close, or the listener's error. Serve closes ln when it returns.
func (s *Server) Serve(ln net.Listener) error {
	s.mu.Lock()
	if s.closing {
		s.mu.Unlock()
		ln.Close()
		return ErrServerClosed
	}
	s.listeners[ln] = struct{}{}
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		delete(s.listeners, ln)
		s.mu.Unlock()
		ln.Close()
	}()

	var backoff time.Duration
	for {
		conn, err := ln.Accept()
		if err != nil {
			if s.isClosing() {
				return ErrServerClosed
			}
			if errors.Is(err, net.ErrClosed) {
				return err
			}
			// Out of file descriptors and the like: wait for some to free up, as
			// net/http does, rather than spin or give up.
			backoff = min(max(2*backoff, 5*time.Millisecond), time.Second)
			s.log.Error("accept failed; retrying", "err", err, "retry_in", backoff)
			select {
			case <-time.After(backoff):
			case <-s.ctx.Done():
			}
			continue
		}
		backoff = 0
		t := s.admit(conn, originOfConn(conn), true)
		if t == nil {
			if s.isClosing() {
				return ErrServerClosed
			}
			continue
		}
		go t.serve()
	}
}

// admit registers a new connection from origin as a tunnel in its handshake, or closes it
// and returns nil when admission says no (too many handshakes in all, or from its source) or
// the server is closing. needTLS says whether conn is the raw connection from a TLS listener
// (else a WebSocket, TLS done in front).
func (s *Server) admit(conn net.Conn, origin clientOrigin, needTLS bool) *tunnel {
	src := sourceOf(origin.Addr)
	if ok, result := s.admission.admit(src); !ok {
		// Dropped here a connection costs nothing but this: a flood of clients that never
		// authenticate cannot hold more than MaxHandshakes handshakes' worth, nor one
		// source more than MaxHandshakesPerSource of them.
		s.m.tunnelsTotal.WithLabelValues(result).Inc()
		s.warnHandshakeLimit(result, src)
		conn.Close()
		return nil
	}
	t := &tunnel{
		s:       s,
		id:      s.lastTunnelID.Add(1),
		raw:     conn,
		origin:  origin,
		source:  src,
		needTLS: needTLS,
		targets: make(map[net.Conn]struct{}),
	}
	t.log = s.log.With("tunnel", t.id)
	s.mu.Lock()
	if s.closing {
		s.mu.Unlock()
		s.admission.done(src)
		conn.Close()
		return nil
	}
	s.tunnels[t] = struct{}{}
	s.wg.Add(1)
	s.mu.Unlock()
	return t
}

func (s *Server) isClosing() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.closing
}

// beginClose stops every listener and returns the tunnels open at that moment.
func (s *Server) beginClose() []*tunnel {
	s.mu.Lock()
	s.closing = true
	for ln := range s.listeners {
		ln.Close()
	}
	tunnels := s.tunnelsLocked()
	s.mu.Unlock()
	s.web.close()
	return tunnels
}

// tunnelsLocked returns the tunnels open now. Called with s.mu held.
func (s *Server) tunnelsLocked() []*tunnel {
	tunnels := make([]*tunnel, 0, len(s.tunnels))
	for t := range s.tunnels {
		tunnels = append(tunnels, t)
	}
	return tunnels
}

// Shutdown stops the server gracefully: it stops accepting, drops tunnels still in their
// handshake, sends every tunnel a yamux GoAway (so clients open no new streams on it and
// reconnect elsewhere), and closes each tunnel once its streams have ended. When ctx ends
// first, it closes everything that is left, waits for it, and returns ctx's error.
func (s *Server) Shutdown(ctx context.Context) error {
	for _, t := range s.beginClose() {
		t.drain()
	}
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		if s.closeIdleTunnels() {
			s.wg.Wait()
			s.cancel()
			s.throttle.stop()
			return nil
		}
		select {
		case <-ctx.Done():
			s.Close()
			return ctx.Err()
		case <-tick.C:
		}
	}
}

// closeIdleTunnels closes the draining tunnels that have no stream left and reports whether
// none remain.
func (s *Server) closeIdleTunnels() bool {
	s.mu.Lock()
	tunnels := s.tunnelsLocked()
	s.mu.Unlock()
	for _, t := range tunnels {
		// New tunnels may still arrive between beginClose and here (accepted just before);
		// drain is idempotent.
		t.drain()
		if t.idle() {
			t.close()
		}
	}
	return len(tunnels) == 0
}

// Close stops the server at once: listeners, tunnels and their streams are closed, dials in
// flight are aborted. It returns once every tunnel's goroutines are done.
func (s *Server) Close() error {
	for _, t := range s.beginClose() {
		t.close()
	}
	s.cancel()
	// Tunnels accepted while beginClose ran register before closing is seen; close them too.
	s.mu.Lock()
	for t := range s.tunnels {
		t.close()
	}
	s.mu.Unlock()
	s.wg.Wait()
	s.throttle.stop()
	return nil
}

// tunnel is one client connection, from accept to close.
type tunnel struct {
	s      *Server
	id     uint64
	raw    net.Conn
	origin clientOrigin // who it comes from, for logs: the peer, or the client a trusted reverse proxy names
	source netip.Prefix // what admission and the auth throttle count it against (sourceOf its origin)
	log    *slog.Logger

	needTLS   bool // raw is from a TLS listener: the handshake starts with TLS
	handedOff bool // raw turned out to carry HTTP and went to the WebSocket endpoint (ws.go)

	mux *muxconn.Conn // under session; set before session
	use *identityUse  // its identity's budget; set before session

	mu       sync.Mutex
	session  *yamux.Session // nil until authenticated
	resets   *wire.Resetter // with session: resets one of its streams
	draining bool
	closed   bool
	streams  int                   // streams being handled
	targets  map[net.Conn]struct{} // target connections, closed with the tunnel
	streamWG sync.WaitGroup
}

// drain stops new streams: a GoAway once the session exists, else the connection closes
// (a tunnel still in its handshake has nothing worth waiting for).
func (t *tunnel) drain() {
	t.mu.Lock()
	if t.draining {
		t.mu.Unlock()
		return
	}
	t.draining = true
	sess := t.session
	t.mu.Unlock()
	if sess == nil {
		t.raw.Close()
		return
	}
	t.goAway(sess)
}

// goAway sends sess a GoAway without waiting for it to leave: behind a client that stopped
// reading it would wait for yamux's write timeout, and Shutdown drains every tunnel in turn.
func (t *tunnel) goAway(sess *yamux.Session) {
	// yamux resets the streams a client opens from now on without queuing them for accept.
	t.mux.SetAcceptQueue(0)
	t.s.wg.Add(1)
	go func() {
		defer t.s.wg.Done()
		if err := sess.GoAway(); err != nil && !errors.Is(err, yamux.ErrSessionShutdown) {
			t.log.Debug("send GoAway", "err", err)
		}
	}()
}

func (t *tunnel) idle() bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.streams == 0
}

// close ends the tunnel now: the session (or the raw connection during the handshake) and
// every target connection.
func (t *tunnel) close() {
	t.mu.Lock()
	t.closed = true
	sess := t.session
	targets := make([]net.Conn, 0, len(t.targets))
	for c := range t.targets {
		targets = append(targets, c)
	}
	t.mu.Unlock()
	// The raw connection first: over a dead path a write of the session's can be blocked in
	// it for as long as TCP keeps retrying (many minutes), holding the TLS connection's lock
	// that the session's Close needs.
	t.raw.Close()
	if sess != nil {
		sess.Close()
	}
	for _, c := range targets {
		c.Close()
	}
}

// serve runs the tunnel: handshake, then the accept loop for streams.
func (t *tunnel) serve() {
	s := t.s
	defer func() {
		s.mu.Lock()
		delete(s.tunnels, t)
		s.mu.Unlock()
		s.wg.Done()
	}()
	start := time.Now()
	remote := t.origin.Remote

	ident, conn, use, ok := t.handshake(start, remote)
	if t.handedOff {
		return // the connection and its admission slot now belong to the HTTP server
	}
	s.admission.done(t.source)
	if !ok {
		t.raw.Close()
		return
	}
	defer s.budgets.closeTunnel(use)
	t.use = use
	t.mux = muxconn.NewConn(conn)
	t.mux.SetAcceptQueue(acceptQueue)
	resets := wire.NewResetter(t.mux)
	sess, err := yamux.Server(resets, s.cfg.Mux)
	if err != nil {
		t.log.Error("start yamux session", "err", err)
		t.raw.Close()
		return
	}
	t.mu.Lock()
	t.session, t.resets = sess, resets
	draining, closed := t.draining, t.closed
	t.mu.Unlock()
	switch {
	case closed:
		sess.Close()
	case draining:
		t.goAway(sess)
	}

	s.m.tunnelsOpen.Inc()
	log := t.log
	if ident.Expiry.IsZero() {
		log.Info("tunnel open", "remote", remote, "subject", ident.Subject)
	} else {
		log.Info("tunnel open", "remote", remote, "subject", ident.Subject, "expires", ident.Expiry.UTC().Format(time.RFC3339))
		// An access token's lifetime bounds the tunnel's: past it the client must
		// authenticate afresh, which it does on its next dial.
		timer := time.AfterFunc(time.Until(ident.Expiry), func() {
			log.Info("tunnel authentication expired; closing it", "subject", ident.Subject)
			t.goAway(sess)
			t.close()
		})
		defer timer.Stop()
	}

	var total int
	for {
		stream, err := sess.AcceptStream()
		if err != nil {
			break
		}
		t.mux.Accepted()
		total++
		t.startStream(stream)
	}
	// The session ended (client gone, GoAway and close, keepalive failure): streams on it
	// fail, and target connections are closed so that their relays end too.
	t.close()
	t.streamWG.Wait()
	s.m.tunnelsOpen.Dec()
	log.Info("tunnel closed", "streams", total, "duration", time.Since(start).Round(time.Millisecond))
}

// handshake runs TLS, reads the Hello and authenticates it, all within HandshakeTimeout of
// start, the first byte within FirstByteTimeout. On success it has reserved the tunnel in
// its identity's budget, answered ok, and returns the TLS connection on which the yamux
// session starts.
func (t *tunnel) handshake(start time.Time, remote string) (Identity, net.Conn, *identityUse, bool) {
	s := t.s
	fail := func(result, stage string) (Identity, net.Conn, *identityUse, bool) {
		s.m.tunnelsTotal.WithLabelValues(result).Inc()
		s.m.handshakeFailures.WithLabelValues(stage).Inc()
		return Identity{}, nil, nil, false
	}
	deadline := start.Add(s.cfg.HandshakeTimeout)
	ctx, cancel := context.WithDeadline(s.ctx, deadline)
	defer cancel()

	conn := t.raw
	if !t.needTLS {
		// A WebSocket, upgraded in front (ws.go): TLS is done, the Hello comes next.
		if err := t.raw.SetDeadline(deadline); err != nil {
			return fail(resultHandshakeFailed, stageHello)
		}
	} else {
		// A connection that sends nothing gives up its place sooner than one that is slow
		// to finish a handshake it began.
		firstByte := start.Add(s.cfg.FirstByteTimeout)
		if deadline.Before(firstByte) {
			firstByte = deadline
		}
		if err := t.raw.SetDeadline(firstByte); err != nil {
			return fail(resultHandshakeFailed, stageTLS)
		}
		var first [1]byte
		if _, err := io.ReadFull(t.raw, first[:]); err != nil {
			t.log.Debug("no TLS handshake began", "remote", remote, "err", err)
			return fail(resultHandshakeFailed, stageTLS)
		}
		if err := t.raw.SetDeadline(deadline); err != nil {
			return fail(resultHandshakeFailed, stageTLS)
		}
		tc := tls.Server(&prefixedConn{Conn: t.raw, prefix: first[:]}, s.cfg.TLS)
		if err := tc.HandshakeContext(ctx); err != nil {
			t.log.Debug("TLS handshake failed", "remote", remote, "err", err)
			return fail(resultHandshakeFailed, stageTLS)
		}
		var isHTTP bool
		if conn, isHTTP = sniffHTTP(tc); isHTTP {
			// A WebSocket upgrade (ws.go): the HTTP server takes the connection, which
			// comes back as a tunnel once upgraded.
			if t.raw.SetDeadline(time.Time{}) == nil && s.web.handOver(conn, t.source) {
				t.handedOff = true
				return Identity{}, nil, nil, false
			}
			return fail(resultHandshakeFailed, stageHello)
		}
	}
	hello, err := wire.ReadHello(conn)
	if err != nil {
		// Not a tessel-proxy client, or too slow: per the spec, close without a reply.
		t.log.Info("handshake failed", "remote", remote, "err", err)
		return fail(resultHandshakeFailed, stageHello)
	}
	if hello.Version != wire.Version {
		t.log.Info("client speaks another wire version", "remote", remote, "version", hello.Version)
		_ = wire.WriteReply(conn, wire.Reply{Status: wire.StatusBadVersion,
			Message: fmt.Sprintf("this server speaks wire version %d, the client %d: upgrade the older one", wire.Version, hello.Version)})
		return fail(resultBadVersion, stageHello)
	}
	// A source that failed too often waits for its turn, or is refused unchecked.
	src := t.source
	if err := s.throttle.wait(ctx, src); err != nil {
		if errors.As(err, new(*throttledError)) {
			_ = wire.WriteReply(conn, wire.Reply{Status: wire.StatusAuthFailed, Message: err.Error()})
			return fail(resultAuthThrottled, stageAuth)
		}
		return fail(resultHandshakeFailed, stageAuth)
	}
	ident, err := s.cfg.Authenticator.Authenticate(ctx, hello.Token)
	hello.Token = ""
	if err != nil {
		s.throttle.failed(src, time.Now(), t.log, "authentication failed", "remote", remote, "err", err)
		_ = wire.WriteReply(conn, wire.Reply{Status: wire.StatusAuthFailed, Message: "token refused: check PROXY_TOKEN or log in again"})
		return fail(resultAuthFailed, stageAuth)
	}
	if !ident.Expiry.IsZero() && !ident.Expiry.After(time.Now()) {
		s.throttle.failed(src, time.Now(), t.log, "authentication failed", "remote", remote, "subject", ident.Subject, "err", "token expired")
		_ = wire.WriteReply(conn, wire.Reply{Status: wire.StatusAuthFailed, Message: "token expired: log in again"})
		return fail(resultAuthFailed, stageAuth)
	}
	use, why := s.budgets.openTunnel(ident.Subject)
	if use == nil {
		t.log.Warn("tunnel refused", "remote", remote, "subject", ident.Subject, "reason", why)
		_ = wire.WriteReply(conn, wire.Reply{Status: wire.StatusLimit, Message: why})
		s.m.tunnelsTotal.WithLabelValues(resultTunnelLimit).Inc()
		return Identity{}, nil, nil, false
	}
	// Counted before the reply, so that whoever sees the ok also sees it counted.
	s.m.tunnelsTotal.WithLabelValues(resultOK).Inc()
	if err := wire.WriteReply(conn, wire.Reply{Status: wire.StatusOK}); err != nil {
		t.log.Info("client left during the handshake", "remote", remote, "err", err)
		s.budgets.closeTunnel(use)
		return Identity{}, nil, nil, false
	}
	if err := t.raw.SetDeadline(time.Time{}); err != nil {
		s.budgets.closeTunnel(use)
		return Identity{}, nil, nil, false
	}
	return ident, conn, use, true
}

// prefixedConn hands out prefix before what its connection reads: bytes read already, to see
// that a client began its TLS handshake, or (after TLS) whether it speaks HTTP (ws.go).
type prefixedConn struct {
	net.Conn
	prefix []byte
}

func (c *prefixedConn) Read(p []byte) (int, error) {
	if len(c.prefix) > 0 {
		n := copy(p, c.prefix)
		c.prefix = c.prefix[n:]
		return n, nil
	}
	return c.Conn.Read(p)
}
