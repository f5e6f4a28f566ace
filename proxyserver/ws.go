package proxyserver

import (
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"sync"

	"github.com/coder/websocket"

	"github.com/tessel/tessel-proxy/internal/wsconn"
	"github.com/tessel/tessel-proxy/wire"
)

// DefaultWebSocketPath is where the server takes WebSocket tunnels unless
// Config.WebSocketPath says otherwise.
const DefaultWebSocketPath = wire.DefaultWebSocketPath

// clientOrigin is where a tunnel comes from, for logs and (through sourceOf) the per-source
// limits: the TCP peer, or, for a WebSocket through a trusted reverse proxy, the client that
// proxy names in X-Forwarded-For.
type clientOrigin struct {
	Addr   netip.Addr // the client
	Remote string     // as logs show it: "203.0.113.5:40522", or "203.0.113.5 via 127.0.0.1:40522"
}

// originOfConn is the origin of a connection accepted directly from the client.
func originOfConn(c net.Conn) clientOrigin {
	remote := c.RemoteAddr().String()
	ap, _ := netip.ParseAddrPort(remote)
	return clientOrigin{Addr: ap.Addr().Unmap(), Remote: remote}
}

// originOfRequest is the origin of a WebSocket request. X-Forwarded-For is believed only
// when the peer is a trusted reverse proxy, and then only its last entry: the one that
// proxy added; the ones before it are whatever the client claimed.
func originOfRequest(r *http.Request, trusted []netip.Prefix) clientOrigin {
	ap, _ := netip.ParseAddrPort(r.RemoteAddr)
	peer := ap.Addr().Unmap()
	src := clientOrigin{Addr: peer, Remote: r.RemoteAddr}
	if !inPrefixes(peer, trusted) {
		return src
	}
	xff := r.Header.Values("X-Forwarded-For")
	if len(xff) == 0 {
		return src
	}
	entries := strings.Split(xff[len(xff)-1], ",")
	last := strings.TrimSpace(entries[len(entries)-1])
	client, err := netip.ParseAddr(last)
	if err != nil {
		// Some proxies add the client's port: 203.0.113.7:4444 or [2001:db8::7]:4444.
		withPort, perr := netip.ParseAddrPort(last)
		if perr != nil {
			return src
		}
		client = withPort.Addr()
	}
	client = client.Unmap()
	return clientOrigin{Addr: client, Remote: client.String() + " via " + r.RemoteAddr}
}

func inPrefixes(a netip.Addr, ps []netip.Prefix) bool {
	for _, p := range ps {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// DefaultTrustedProxies returns the peers whose X-Forwarded-For ServeWebSocket believes
// when given none: loopback, where a reverse proxy on the same machine connects from.
func DefaultTrustedProxies() []netip.Prefix {
	return []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8"), netip.MustParsePrefix("::1/128")}
}

// webFront is the HTTP side of a Server: the WebSocket endpoint on the TLS listeners (a
// connection whose first bytes are an HTTP request is handed to it) and on any plain-HTTP
// listener behind a reverse proxy.
type webFront struct {
	s *Server

	mu      sync.Mutex
	started bool
	conns   chan net.Conn // connections handed over from the TLS listeners
	done    chan struct{} // closed by close
	servers []*http.Server
}

func newWebFront(s *Server) *webFront {
	return &webFront{s: s, conns: make(chan net.Conn), done: make(chan struct{})}
}

// httpServer returns an http.Server for the WebSocket endpoint, trusting X-Forwarded-For
// from trusted peers, registered to be closed with the Server; nil once closing.
func (w *webFront) httpServer(trusted []netip.Prefix) *http.Server {
	s := w.s
	srv := &http.Server{
		Handler:           w.handler(trusted),
		ReadHeaderTimeout: s.cfg.HandshakeTimeout,
		MaxHeaderBytes:    32 << 10,
		ErrorLog:          slog.NewLogLogger(s.log.Handler(), slog.LevelDebug),
		ConnState: func(c net.Conn, state http.ConnState) {
			if hc, ok := c.(*handedConn); ok && (state == http.StateHijacked || state == http.StateClosed) {
				hc.release()
			}
		},
	}
	// One request a connection: a WebSocket takes the connection over, and anything else is
	// answered once; a connection left idle would hold a handshake slot.
	srv.SetKeepAlivesEnabled(false)
	w.mu.Lock()
	defer w.mu.Unlock()
	select {
	case <-w.done:
		return nil
	default:
	}
	w.servers = append(w.servers, srv)
	return srv
}

// handOver gives the HTTP server a connection from a TLS listener whose first bytes were an
// HTTP request line. The connection keeps its admission slot (counted against src) until it
// is upgraded or closed. It reports false when the server is closing (the caller closes the
// connection).
func (w *webFront) handOver(c net.Conn, src netip.Prefix) bool {
	s := w.s
	w.mu.Lock()
	start := !w.started
	w.started = true
	w.mu.Unlock()
	if start {
		srv := w.httpServer(nil) // X-Forwarded-For is never believed on the TLS listener
		if srv == nil {
			return false
		}
		s.mu.Lock()
		if s.closing {
			s.mu.Unlock()
			return false
		}
		s.wg.Add(1)
		s.mu.Unlock()
		go func() {
			defer s.wg.Done()
			srv.Serve(&chanListener{conns: w.conns, done: w.done})
		}()
	}
	hc := &handedConn{Conn: c, release: sync.OnceFunc(func() { s.admission.done(src) })}
	select {
	case w.conns <- hc:
		return true
	case <-w.done:
		return false
	}
}

// close stops every HTTP server: listeners and connections not yet upgraded. Upgraded ones
// are tunnels, closed with the others.
func (w *webFront) close() {
	w.mu.Lock()
	select {
	case <-w.done:
	default:
		close(w.done)
	}
	servers := w.servers
	w.servers = nil
	w.mu.Unlock()
	for _, srv := range servers {
		srv.Close()
	}
}

// handler upgrades requests for the WebSocket path and serves each as a tunnel: the wire
// handshake and yamux session of wire/spec.md, carried in binary messages.
func (w *webFront) handler(trusted []netip.Prefix) http.Handler {
	s := w.s
	return http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		if r.URL.Path != s.cfg.WebSocketPath {
			http.Error(rw, "tessel-proxy: no tunnel endpoint at this path", http.StatusNotFound)
			return
		}
		src := originOfRequest(r, trusted)
		ws, err := websocket.Accept(rw, r, &websocket.AcceptOptions{CompressionMode: websocket.CompressionDisabled})
		if err != nil {
			// Accept has answered (426, 403 for a foreign Origin, ...).
			s.log.Debug("WebSocket upgrade refused", "remote", src.Remote, "err", err)
			return
		}
		conn := wsconn.New(ws, nil, nil)
		t := s.admit(conn, src, false)
		if t == nil {
			return
		}
		t.log = t.log.With("transport", "websocket")
		// The handler's goroutine is the tunnel's: the connection is hijacked, so the
		// HTTP server no longer tracks it.
		t.serve()
	})
}

// ServeWebSocket serves tunnels over WebSocket on plain-HTTP listener ln, at
// Config.WebSocketPath, for a reverse proxy in front that terminates TLS (nginx, Caddy).
// Connections on ln should come only from that proxy: nothing on them is encrypted. The
// client address in logs (and for per-source limits) is the last X-Forwarded-For entry when
// the peer is in trusted (nil: DefaultTrustedProxies), else the peer. It returns
// ErrServerClosed after Shutdown or Close, or the listener's error, and closes ln.
func (s *Server) ServeWebSocket(ln net.Listener, trusted []netip.Prefix) error {
	if trusted == nil {
		trusted = DefaultTrustedProxies()
	}
	srv := s.web.httpServer(trusted)
	if srv == nil {
		ln.Close()
		return ErrServerClosed
	}
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
	}()
	err := srv.Serve(ln)
	if s.isClosing() || errors.Is(err, http.ErrServerClosed) {
		return ErrServerClosed
	}
	return err
}

// sniffHTTP reads the first bytes of a TLS connection: a wire Hello starts with its magic,
// a WebSocket upgrade with "GET ". It returns the connection with those bytes put back and
// whether they were the start of an HTTP request.
func sniffHTTP(c net.Conn) (net.Conn, bool) {
	var head [4]byte
	n, err := io.ReadFull(c, head[:])
	pc := &prefixedConn{Conn: c, prefix: head[:n]}
	return pc, err == nil && string(head[:]) == "GET "
}

// handedConn is a connection handed from a TLS listener to the HTTP server; release frees
// its admission slot.
type handedConn struct {
	net.Conn
	release func()
}

// chanListener is a net.Listener fed with connections from a channel.
type chanListener struct {
	conns chan net.Conn
	done  chan struct{}
}

func (l *chanListener) Accept() (net.Conn, error) {
	select {
	case c := <-l.conns:
		return c, nil
	case <-l.done:
		return nil, net.ErrClosed
	}
}

func (l *chanListener) Close() error   { return nil } // webFront.close closes done
func (l *chanListener) Addr() net.Addr { return wsAddr{} }

type wsAddr struct{}

func (wsAddr) Network() string { return "tcp" }
func (wsAddr) String() string  { return "tls-listener" }
