package proxyclient

import (
	"crypto/tls"
	"crypto/x509"
	"io"
	"net"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/yamux"
	"github.com/tessel/tessel-proxy/internal/relay"
	"github.com/tessel/tessel-proxy/internal/testcert"
	"github.com/tessel/tessel-proxy/proxyconfig"
	"github.com/tessel/tessel-proxy/wire"
)

// testCert makes a self-signed certificate for 127.0.0.1 and localhost.
func testCert(t testing.TB) (tls.Certificate, *x509.CertPool) {
	c := testcert.New(t)
	return c.TLS, c.Pool
}

// testServer is a minimal tunnel server: the wire handshake, yamux, and a relay to
// loopback targets, with hooks to refuse, count and kill.
type testServer struct {
	t      testing.TB
	ln     net.Listener
	pool   *x509.CertPool
	cert   tls.Certificate
	token  string
	tlsCfg *tls.Config
	// targetRoots verifies targets of kind tls streams.
	targetRoots *x509.CertPool

	handshakes atomic.Int32 // Hellos answered ok
	streams    atomic.Int32 // stream requests received
	// helloStatus, when not ok, answers every Hello with it. Set before the first dial.
	helloStatus wire.Status
	// freezeNext makes the next tunnel stop reading after its handshake (a dead path).
	freezeNext atomic.Bool

	mu sync.Mutex
	// refuse, when set, answers a stream request with its status instead of dialing.
	refuse   func(wire.StreamRequest) wire.Status
	sessions []*yamux.Session
	lastReq  wire.StreamRequest
	closed   chan struct{}
	wg       sync.WaitGroup
}

func newTestServer(t testing.TB, token string) *testServer {
	t.Helper()
	cert, pool := testCert(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &testServer{t: t, ln: ln, pool: pool, cert: cert, token: token, closed: make(chan struct{})}
	s.tlsCfg = &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
	s.wg.Add(1)
	go s.serve()
	t.Cleanup(s.Close)
	return s
}

// config is a client configuration that trusts s and routes everything through it.
func (s *testServer) config() proxyconfig.Config {
	return proxyconfig.Config{
		Host:    "127.0.0.1",
		Port:    s.ln.Addr().(*net.TCPAddr).Port,
		RootCAs: s.pool,
		Idle:    proxyconfig.IdleNever,
	}
}

func (s *testServer) Close() {
	select {
	case <-s.closed:
		return
	default:
	}
	close(s.closed)
	s.ln.Close()
	s.killTunnels()
	s.wg.Wait()
}

// killTunnels closes every tunnel the server holds, as a crashed or restarted server would.
func (s *testServer) killTunnels() {
	s.mu.Lock()
	sessions := s.sessions
	s.sessions = nil
	s.mu.Unlock()
	for _, sess := range sessions {
		sess.Close()
	}
}

// goAway tells every tunnel to take no new streams, as a server shutting down does.
func (s *testServer) goAway() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, sess := range s.sessions {
		sess.GoAway()
	}
}

// openTunnels counts tunnels whose session is still open on the server side.
func (s *testServer) openTunnels() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for _, sess := range s.sessions {
		if !sess.IsClosed() {
			n++
		}
	}
	return n
}

func (s *testServer) serve() {
	defer s.wg.Done()
	for {
		c, err := s.ln.Accept()
		if err != nil {
			return
		}
		s.wg.Add(1)
		go s.tunnel(c)
	}
}

func (s *testServer) tunnel(raw net.Conn) {
	defer s.wg.Done()
	tc := tls.Server(raw, s.tlsCfg)
	tc.SetDeadline(time.Now().Add(5 * time.Second))
	hello, err := wire.ReadHello(tc)
	if err != nil {
		raw.Close()
		return
	}
	if s.helloStatus != wire.StatusOK {
		wire.WriteReply(tc, wire.Reply{Status: s.helloStatus, Message: "test refusal"})
		tc.Close()
		return
	}
	if hello.Token != s.token {
		wire.WriteReply(tc, wire.Reply{Status: wire.StatusAuthFailed, Message: "unknown token"})
		tc.Close()
		return
	}
	s.handshakes.Add(1)
	if err := wire.WriteReply(tc, wire.Reply{Status: wire.StatusOK}); err != nil {
		tc.Close()
		return
	}
	tc.SetDeadline(time.Time{})
	var conn net.Conn = tc
	if s.freezeNext.CompareAndSwap(true, false) {
		conn = &frozenConn{Conn: tc, closed: s.closed}
	}
	cfg := wire.MuxConfig()
	cfg.EnableKeepAlive = false
	sess, err := yamux.Server(conn, cfg)
	if err != nil {
		tc.Close()
		return
	}
	s.mu.Lock()
	select {
	case <-s.closed:
		s.mu.Unlock()
		sess.Close()
		return
	default:
	}
	s.sessions = append(s.sessions, sess)
	s.mu.Unlock()
	for {
		st, err := sess.AcceptStream()
		if err != nil {
			return
		}
		s.wg.Add(1)
		go s.stream(st)
	}
}

func (s *testServer) stream(st *yamux.Stream) {
	defer s.wg.Done()
	defer st.Close()
	req, err := wire.ReadStreamRequest(st)
	if err != nil {
		wire.WriteReply(st, wire.Reply{Status: wire.StatusBadRequest, Message: err.Error()})
		return
	}
	s.streams.Add(1)
	s.mu.Lock()
	s.lastReq = req
	refuse, roots := s.refuse, s.targetRoots
	s.mu.Unlock()
	if refuse != nil {
		if status := refuse(req); status != wire.StatusOK {
			wire.WriteReply(st, wire.Reply{Status: status, Message: "test refusal of " + req.Host})
			return
		}
	}
	addr := net.JoinHostPort(req.Host, strconv.Itoa(int(req.Port)))
	var target net.Conn
	if req.Kind == wire.KindTLS {
		target, err = tls.Dial("tcp", addr, &tls.Config{RootCAs: roots, ServerName: req.Host})
	} else {
		target, err = net.Dial("tcp", addr)
	}
	if err != nil {
		wire.WriteReply(st, wire.Reply{Status: wire.StatusRefused, Message: err.Error()})
		return
	}
	defer target.Close()
	if err := wire.WriteReply(st, wire.Reply{Status: wire.StatusOK}); err != nil {
		return
	}
	done := make(chan struct{})
	go func() {
		relay.Copy(target, st, nil)
		if cw, ok := target.(interface{ CloseWrite() error }); ok {
			cw.CloseWrite()
		}
		close(done)
	}()
	relay.Copy(st, target, nil)
	st.Close() // FIN
	select {
	case <-done:
	case <-s.closed:
	}
}

// frozenConn stops reading after the handshake: the server goes silent without closing,
// as a path that dropped every packet would.
type frozenConn struct {
	net.Conn
	closed chan struct{}
}

func (c *frozenConn) Read([]byte) (int, error) {
	<-c.closed
	return 0, io.EOF
}

// echoTarget is a loopback TCP server. For each connection it sends banner (if any) and
// half-closes when bannerThenClose, and otherwise echoes what it reads, prefixed with
// "echo:", until the client half-closes, then closes.
type echoTarget struct {
	ln              net.Listener
	wg              sync.WaitGroup
	bannerThenClose string
	received        chan string
}

func newEchoTarget(t testing.TB) *echoTarget { return newBannerTarget(t, "") }

func newBannerTarget(t testing.TB, banner string) *echoTarget {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	e := &echoTarget{ln: ln, received: make(chan string, 16), bannerThenClose: banner}
	e.wg.Add(1)
	go func() {
		defer e.wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			e.wg.Add(1)
			go e.handle(c.(*net.TCPConn))
		}
	}()
	t.Cleanup(func() { ln.Close(); e.wg.Wait() })
	return e
}

func (e *echoTarget) addr() string { return e.ln.Addr().String() }

func (e *echoTarget) handle(c *net.TCPConn) {
	defer e.wg.Done()
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	if e.bannerThenClose != "" {
		io.WriteString(c, e.bannerThenClose)
		c.CloseWrite()
		b, _ := io.ReadAll(c)
		e.received <- string(b)
		return
	}
	b, _ := io.ReadAll(c)
	e.received <- string(b)
	io.WriteString(c, "echo:"+string(b))
}
