package proxyclient

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/hashicorp/yamux"
	"github.com/tessel/tessel-proxy/internal/muxconn"
	"github.com/tessel/tessel-proxy/proxyconfig"
	"github.com/tessel/tessel-proxy/wire"
)

// manager keeps at most one tunnel open, opens it on demand, and closes it per PROXY_IDLE.
type manager struct {
	d                *Dialer
	handshakeTimeout time.Duration
	muxConfig        *yamux.Config
	// afterFunc arms the idle timer; tests replace it to fire timers by hand.
	afterFunc func(time.Duration, func()) (stop func() bool)

	base   context.Context // cancelled by close: ends handshakes and watchers
	cancel context.CancelFunc

	mu      sync.Mutex
	cur     *tunnel
	pending *handshake
	closed  bool
	seq     int
	wg      sync.WaitGroup
}

type tunnel struct {
	id       int
	sess     *yamux.Session
	raw      net.Conn // the TCP connection under TLS and the session
	mux      *muxconn.Conn
	resets   *wire.Resetter
	active   int         // connections handed out and not yet closed
	idleStop func() bool // non-nil while the idle timer is armed
	idleGen  int         // which arming is current, so that a stale timer does nothing
}

// handshake is one tunnel being opened; every dial that needs the tunnel meanwhile waits
// on the same one.
type handshake struct {
	done    chan struct{}
	t       *tunnel
	err     error
	waiters int
	cancel  context.CancelFunc
}

func newManager(d *Dialer) *manager {
	base, cancel := context.WithCancel(context.Background())
	return &manager{
		d:                d,
		handshakeTimeout: DefaultHandshakeTimeout,
		muxConfig:        wire.MuxConfig(),
		afterFunc: func(d time.Duration, f func()) func() bool {
			return time.AfterFunc(d, f).Stop
		},
		base:   base,
		cancel: cancel,
	}
}

// get returns the open tunnel, opening one if needed, with a connection counted on it:
// the caller must release it. Counting under the same lock that hands the tunnel out
// means that, with PROXY_IDLE=0, another connection closing meanwhile cannot close the
// tunnel under a dial that holds it, so overlapping connections share one tunnel. A
// caller whose ctx ends stops waiting without disturbing the others; the handshake is
// abandoned only when nobody waits for it any more.
func (m *manager) get(ctx context.Context) (*tunnel, error) {
	m.mu.Lock()
	if m.closed {
		m.mu.Unlock()
		return nil, ErrClosed
	}
	if t := m.cur; t != nil && !t.sess.IsClosed() {
		m.acquireLocked(t)
		m.mu.Unlock()
		return t, nil
	}
	h := m.pending
	if h == nil {
		hctx, cancel := context.WithTimeout(m.base, m.handshakeTimeout)
		h = &handshake{done: make(chan struct{}), cancel: cancel}
		m.pending = h
		m.wg.Add(1)
		go m.open(hctx, h)
	}
	h.waiters++
	m.mu.Unlock()

	select {
	case <-h.done:
		return h.t, h.err
	case <-ctx.Done():
		m.mu.Lock()
		select {
		case <-h.done:
			// The tunnel opened meanwhile, with this waiter counted on it.
			m.mu.Unlock()
			if h.t != nil {
				m.release(h.t)
			}
			return nil, ctx.Err()
		default:
		}
		h.waiters--
		if h.waiters == 0 && m.pending == h {
			m.pending = nil
			h.cancel()
		}
		m.mu.Unlock()
		return nil, ctx.Err()
	}
}

func (m *manager) open(ctx context.Context, h *handshake) {
	defer m.wg.Done()
	defer h.cancel()
	addr := m.d.ProxyAddr()
	m.d.log.Debug("tunnel opening", "proxy", m.d.Transport())
	start := time.Now()
	t, err := m.authenticate(ctx, addr)

	m.mu.Lock()
	abandoned := m.pending != h
	if !abandoned {
		m.pending = nil
	}
	var unwanted *tunnel
	switch {
	case m.closed:
		unwanted, err = t, ErrClosed
	case abandoned && err == nil:
		unwanted, err = t, context.Canceled
	}
	if err != nil {
		h.err = err
		close(h.done)
		m.mu.Unlock()
		if unwanted != nil {
			unwanted.close()
		}
		m.d.log.Debug("tunnel failed", "proxy", addr, "err", err)
		return
	}
	m.seq++
	// Every waiter gets a connection counted on the tunnel (see get); waiters only leave
	// under m.mu, so the count is exact. Not abandoned means at least one.
	t.id, t.active = m.seq, h.waiters
	m.cur = t
	h.t = t
	close(h.done)
	m.wg.Add(1)
	m.mu.Unlock()
	m.d.log.Debug("tunnel open", "tunnel", t.id, "proxy", addr, "took", time.Since(start).Round(time.Microsecond))
	go m.watch(t)
}

// authenticate opens a tunnel with a token from the Dialer's token source. When the proxy
// refuses it and the source gives another (a refresh), it tries once more with that one
// before the refusal reaches the caller.
func (m *manager) authenticate(ctx context.Context, addr string) (*tunnel, error) {
	token, err := m.d.tokenFor(ctx, "")
	if err != nil {
		return nil, err
	}
	t, err := m.handshake(ctx, addr, token)
	if !errors.Is(err, wire.ErrAuthFailed) || m.d.tokens == nil {
		return t, err
	}
	fresh, terr := m.d.tokenFor(ctx, token)
	if terr != nil {
		return nil, fmt.Errorf("%w; and renewing the token failed: %v", err, terr)
	}
	if fresh == token {
		return nil, err
	}
	m.d.log.Debug("token refused; trying once more with a renewed one", "proxy", addr)
	return m.handshake(ctx, addr, fresh)
}

// handshake connects to the proxy (transport: TCP or an upstream proxy's CONNECT, TLS,
// perhaps a WebSocket), authenticates with token and starts yamux. It returns the tunnel
// (session, TCP connection, resetter) without id or count.
func (m *manager) handshake(ctx context.Context, addr, token string) (*tunnel, error) {
	tc, raw, err := m.d.transport(m.handshakeTimeout).dial(ctx)
	if err != nil {
		return nil, err
	}
	if dl, ok := ctx.Deadline(); ok {
		tc.SetDeadline(dl)
	}
	stop := context.AfterFunc(ctx, func() { tc.SetDeadline(time.Now()) })
	err = wire.WriteHello(tc, wire.Hello{Version: wire.Version, Token: token})
	var reply wire.Reply
	if err == nil {
		reply, err = wire.ReadReply(tc)
	}
	if !stop() || err != nil {
		tc.Close()
		if err == nil {
			err = ctx.Err()
		}
		if ctx.Err() != nil {
			return nil, m.handshakeErr(ctx, addr, err)
		}
		return nil, fmt.Errorf("proxy %s broke off the handshake (is it a tessel-proxy server?): %w: %v", addr, ErrProtocol, err)
	}
	if err := reply.Err(); err != nil {
		tc.Close()
		return nil, fmt.Errorf("%s: %w", addr, err)
	}
	tc.SetDeadline(time.Time{})
	mux := muxconn.NewConn(tc)
	resets := wire.NewResetter(mux)
	sess, err := yamux.Client(resets, m.muxConfig)
	if err != nil {
		tc.Close()
		return nil, fmt.Errorf("tunnel to %s: %w", addr, err)
	}
	return &tunnel{sess: sess, raw: raw, mux: mux, resets: resets}, nil
}

func (m *manager) handshakeErr(ctx context.Context, addr string, err error) error {
	if errors.Is(ctx.Err(), context.DeadlineExceeded) {
		return fmt.Errorf("%w %s: no answer within %s", ErrProxyUnreachable, addr, m.handshakeTimeout)
	}
	if errors.Is(ctx.Err(), context.Canceled) {
		return context.Canceled
	}
	return fmt.Errorf("%w %s: %v", ErrProxyUnreachable, addr, err)
}

// watch forgets t once its session ends, whoever ended it.
func (m *manager) watch(t *tunnel) {
	defer m.wg.Done()
	select {
	case <-t.sess.CloseChan():
		// The session may have ended itself (keepalive) and be stuck closing behind a
		// write to a dead path; closing the connection under it frees it.
		t.close()
	case <-m.base.Done():
		t.close()
	}
	m.mu.Lock()
	if m.cur == t {
		m.cur = nil
	}
	if t.idleStop != nil {
		t.idleStop()
		t.idleStop = nil
	}
	m.mu.Unlock()
	m.d.log.Debug("tunnel closed", "tunnel", t.id)
}

// acquireLocked counts a new connection on t and stops its idle timer. Called with m.mu
// held.
func (m *manager) acquireLocked(t *tunnel) {
	t.active++
	if t.idleStop != nil {
		t.idleStop()
		t.idleStop = nil
	}
}

// putBack undoes get's count for a caller that only wanted the tunnel open (Connect). It
// arms the idle timer like release, but never closes the tunnel at once: PROXY_IDLE=0
// counts from the last connection, and there has been none yet.
func (m *manager) putBack(t *tunnel) {
	m.mu.Lock()
	defer m.mu.Unlock()
	t.active--
	if t.active == 0 && m.cur == t && m.d.cfg.Idle > 0 {
		m.armIdle(t)
	}
}

// retire makes t take no new connections; it closes when its last one does.
func (m *manager) retire(t *tunnel) {
	m.mu.Lock()
	if m.cur == t {
		m.cur = nil
	}
	m.mu.Unlock()
}

// release ends a connection on t and applies PROXY_IDLE when it was the last. A retired
// tunnel closes with its last connection.
func (m *manager) release(t *tunnel) {
	m.mu.Lock()
	t.active--
	closeNow := t.active == 0 && m.cur != t
	if t.active == 0 && m.cur == t {
		switch idle := m.d.cfg.Idle; {
		case idle == 0:
			closeNow = true
			m.cur = nil
		case idle == proxyconfig.IdleNever:
		default:
			m.armIdle(t)
		}
	}
	m.mu.Unlock()
	if closeNow {
		m.d.log.Debug("tunnel unused", "tunnel", t.id)
		t.close()
	}
}

// armIdle starts t's idle timer. Called with m.mu held.
func (m *manager) armIdle(t *tunnel) {
	if t.idleStop != nil {
		t.idleStop()
	}
	t.idleGen++
	gen := t.idleGen
	t.idleStop = m.afterFunc(m.d.cfg.Idle, func() {
		m.mu.Lock()
		// A timer stopped too late (a connection came, or the timer was re-armed) keeps
		// the tunnel.
		if m.closed || t.active > 0 || m.cur != t || t.idleStop == nil || t.idleGen != gen {
			m.mu.Unlock()
			return
		}
		m.cur = nil
		t.idleStop = nil
		m.wg.Add(1)
		m.mu.Unlock()
		defer m.wg.Done()
		m.d.log.Debug("tunnel idle", "tunnel", t.id, "idle", m.d.cfg.Idle)
		t.close()
	})
}

func (m *manager) close() {
	m.mu.Lock()
	m.closed = true
	t := m.cur
	m.cur = nil
	m.mu.Unlock()
	m.cancel()
	if t != nil {
		t.close()
	}
	m.wg.Wait()
}

// close ends the tunnel: the TCP connection first, so that a session write blocked on a
// dead path (which holds the TLS connection's lock for as long as TCP keeps retrying) cannot
// hold up the session's Close.
func (t *tunnel) close() {
	t.raw.Close()
	t.sess.Close()
}

// dialStream opens one stream to host:port. The stream request and early payload go out
// in one write; the proxy's reply decides the result.
func (m *manager) dialStream(ctx context.Context, kind wire.Kind, host string, port uint16, early []byte) (net.Conn, error) {
	target := net.JoinHostPort(host, fmt.Sprint(port))
	buf, err := wire.AppendStreamRequest(make([]byte, 0, 5+len(host)+len(early)),
		wire.StreamRequest{Version: wire.Version, Kind: kind, Host: host, Port: port})
	if err != nil {
		return nil, fmt.Errorf("dial %s: %w", target, err)
	}
	buf = append(buf, early...)

	// A tunnel can close between get and OpenStream (idle timer, proxy restart), or the
	// proxy can send GoAway while our stream is on its way, and then reset the stream
	// without acting on it. Both are safe to retry on a fresh tunnel, a bounded number of
	// times. Nothing is retried once the proxy may have acted on the request.
	for attempt := 0; ; attempt++ {
		c, retry, err := m.tryStream(ctx, target, buf)
		if err == nil {
			return c, nil
		}
		if !retry || attempt == 2 || ctx.Err() != nil {
			return nil, fmt.Errorf("dial %s through the proxy: %w", target, err)
		}
	}
}

func (m *manager) tryStream(ctx context.Context, target string, buf []byte) (c *streamConn, retry bool, err error) {
	t, err := m.get(ctx)
	if err != nil {
		return nil, false, err
	}
	st, err := t.sess.OpenStream()
	if err != nil {
		// GoAway: the proxy is shutting down or the token expired. Streams already open
		// may finish; new ones need a new tunnel.
		m.retire(t)
		m.release(t)
		return nil, true, fmt.Errorf("%w: %v", ErrTunnelLost, err)
	}
	c = &streamConn{Stream: st, m: m, t: t, remote: tunnelAddr(target)}

	if dl, ok := ctx.Deadline(); ok {
		st.SetDeadline(dl)
	}
	stop := context.AfterFunc(ctx, func() { st.SetDeadline(time.Now()) })
	_, err = st.Write(buf)
	var reply wire.Reply
	if err == nil {
		reply, err = wire.ReadReply(st)
	}
	if !stop() {
		c.Close()
		return nil, false, ctx.Err()
	}
	if err != nil {
		refused := errors.Is(err, yamux.ErrConnectionReset) && goneAway(t.sess)
		if refused {
			m.retire(t)
		}
		err = c.mapErr("read", err)
		c.Close()
		return nil, refused, err
	}
	if err := reply.Err(); err != nil {
		c.Close()
		return nil, false, err
	}
	st.SetDeadline(time.Time{})
	return c, false, nil
}

// goneAway reports whether the proxy has sent sess a GoAway. A stream reset before its reply
// was read is safe to retry only then: yamux resets the streams that reach a session after its
// GoAway, without the proxy acting on them; any other reset comes from the proxy after it
// dialed (the target reset the connection at once), and the reply it had sent is lost with
// the reset. yamux tells of a GoAway only by refusing to open a stream; a stream that does
// open is closed again unused (the proxy reads no request on it and closes it).
func goneAway(sess *yamux.Session) bool {
	st, err := sess.OpenStream()
	if err == nil {
		st.Close()
		return false
	}
	return errors.Is(err, yamux.ErrRemoteGoAway)
}

// streamConn is a proxied connection: one yamux stream.
type streamConn struct {
	*yamux.Stream
	m      *manager
	t      *tunnel
	remote net.Addr
	once   sync.Once
	closed atomic.Bool
	abort  atomic.Bool // SetLinger(0): Close resets
}

// tunnelAddr is a target as the program named it (host unresolved).
type tunnelAddr string

func (tunnelAddr) Network() string  { return "tcp" }
func (a tunnelAddr) String() string { return string(a) }

func (c *streamConn) Read(p []byte) (int, error) {
	if c.closed.Load() {
		return 0, net.ErrClosed
	}
	n, err := c.Stream.Read(p)
	if err != nil {
		err = c.mapErr("read", err)
	}
	return n, err
}

func (c *streamConn) Write(p []byte) (int, error) {
	if c.closed.Load() {
		return 0, net.ErrClosed
	}
	n, err := c.Stream.Write(p)
	if err != nil {
		err = c.mapErr("write", err)
	}
	return n, err
}

// mapErr turns the end of the tunnel under a stream into ErrTunnelLost: yamux reports it
// as a plain EOF on read, which would pass a truncated response off as complete. A reset of
// the stream (the target reset its connection) becomes what a TCP connection reports for a
// reset: a *net.OpError for which errors.Is(err, syscall.ECONNRESET) holds.
func (c *streamConn) mapErr(op string, err error) error {
	if c.closed.Load() {
		return net.ErrClosed
	}
	if errors.Is(err, yamux.ErrConnectionReset) {
		return &net.OpError{Op: op, Net: "tcp", Source: c.LocalAddr(), Addr: c.remote, Err: os.NewSyscallError(op, syscall.ECONNRESET)}
	}
	if errors.Is(err, yamux.ErrSessionShutdown) || (err != nil && c.t.sess.IsClosed()) {
		return fmt.Errorf("%w: %v", ErrTunnelLost, err)
	}
	return err
}

// SetLinger(0) makes Close reset the connection, as it does for a *net.TCPConn: the target's
// connection is reset (the proxy's side closes with SO_LINGER 0) and it reads ECONNRESET
// rather than an end of stream. Any other value restores the default, a graceful close.
func (c *streamConn) SetLinger(sec int) error {
	c.abort.Store(sec == 0)
	return nil
}

// CloseWrite sends FIN: the target sees end of input and can still answer.
func (c *streamConn) CloseWrite() error { return c.Stream.Close() }

// Close ends the connection in both directions and unblocks pending reads and writes. The
// proxy sees a FIN, or a reset after SetLinger(0); data still in flight towards us is
// dropped.
func (c *streamConn) Close() error {
	if c.closed.Swap(true) {
		return nil
	}
	c.Stream.SetDeadline(time.Now())
	var err error
	if c.abort.Load() {
		c.t.resets.ResetStream(c.Stream)
		// yamux would keep the stream, buffer and all, until StreamCloseTimeout.
		c.t.mux.ResetStream(c.Stream.StreamID())
	} else {
		err = c.Stream.Close()
	}
	c.once.Do(func() { c.m.release(c.t) })
	return err
}

func (c *streamConn) LocalAddr() net.Addr  { return c.t.raw.LocalAddr() }
func (c *streamConn) RemoteAddr() net.Addr { return c.remote }
