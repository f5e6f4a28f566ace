package proxyclient

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/yamux"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/tessel/tessel-proxy/internal/syncbuf"
	"github.com/tessel/tessel-proxy/internal/testcert"
	"github.com/tessel/tessel-proxy/proxyconfig"
	"github.com/tessel/tessel-proxy/proxyserver"
	"github.com/tessel/tessel-proxy/wire"
)

// testCert makes a self-signed certificate for 127.0.0.1 and localhost.
func testCert(t testing.TB) (tls.Certificate, *x509.CertPool) {
	c := testcert.New(t)
	return c.TLS, c.Pool
}

// testServer is the real proxy server (proxyserver.Server) on loopback, behind a door that
// lets a test cut or silence its connections. It counts handshakes and streams through the
// server's Prometheus metrics and reads the stream requests from its log.
type testServer struct {
	t         testing.TB
	door      *door
	pool      *x509.CertPool
	cert      tls.Certificate
	token     string
	configure []func(*proxyserver.Config)

	mu      sync.Mutex
	servers []*servedServer // the last one takes new tunnels; earlier ones are shutting down
}

// servedServer is one proxyserver.Server serving the door.
type servedServer struct {
	srv      *proxyserver.Server
	reg      *prometheus.Registry
	logs     *syncbuf.Buffer
	ln       *doorListener
	served   chan error
	shutdown chan struct{} // closed when a Shutdown started by goAway has returned
}

// allowLoopback lets the server reach the loopback targets of the tests; a server's default
// policy refuses them.
func allowLoopback(c *proxyserver.Config) {
	c.Policy = &proxyserver.Policy{Allow: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8"), netip.MustParsePrefix("::1/128")}}
}

// denyLoopback keeps the server's default policy, which refuses every loopback target.
func denyLoopback(c *proxyserver.Config) { c.Policy = nil }

// quietLogs drops the server's log, for benchmarks (a test then sees no stream requests).
func quietLogs(c *proxyserver.Config) { c.Logger = nil }

// newTestServer starts a real server that accepts token and allows loopback targets;
// configure adjusts its Config further.
func newTestServer(t testing.TB, token string, configure ...func(*proxyserver.Config)) *testServer {
	t.Helper()
	cert, pool := testCert(t)
	s := &testServer{t: t, door: newDoor(t), pool: pool, cert: cert, token: token,
		configure: append([]func(*proxyserver.Config){allowLoopback}, configure...)}
	s.start()
	t.Cleanup(s.Close)
	return s
}

// start starts a new server behind the door; it takes the tunnels that arrive from now on.
func (s *testServer) start() *servedServer {
	s.t.Helper()
	auth, err := proxyserver.NewStaticAuthenticator(s.token)
	if err != nil {
		s.t.Fatal(err)
	}
	ss := &servedServer{reg: prometheus.NewRegistry(), logs: &syncbuf.Buffer{}, served: make(chan error, 1)}
	cfg := proxyserver.Config{
		TLS:           &tls.Config{Certificates: []tls.Certificate{s.cert}},
		Authenticator: auth,
		Resolver:      loopbackResolver{},
		Logger:        slog.New(slog.NewJSONHandler(ss.logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
		Metrics:       ss.reg,
	}
	for _, c := range s.configure {
		c(&cfg)
	}
	if ss.srv, err = proxyserver.New(cfg); err != nil {
		s.t.Fatal(err)
	}
	ss.ln = s.door.listener()
	go func() { ss.served <- ss.srv.Serve(ss.ln) }()
	s.mu.Lock()
	s.servers = append(s.servers, ss)
	s.mu.Unlock()
	return ss
}

// config is a client configuration that trusts s and routes everything through it.
func (s *testServer) config() proxyconfig.Config {
	return proxyconfig.Config{
		Host:    "127.0.0.1",
		Port:    s.door.ln.Addr().(*net.TCPAddr).Port,
		RootCAs: s.pool,
		Idle:    proxyconfig.IdleNever,
	}
}

// addr is where clients connect.
func (s *testServer) addr() string { return s.door.ln.Addr().String() }

func (s *testServer) serversNow() []*servedServer {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]*servedServer(nil), s.servers...)
}

// Close stops every server and the door.
func (s *testServer) Close() {
	for _, ss := range s.serversNow() {
		ss.srv.Close()
		if err := <-ss.served; !errors.Is(err, proxyserver.ErrServerClosed) {
			s.t.Errorf("Serve returned %v, want ErrServerClosed", err)
		}
		if ss.shutdown != nil {
			<-ss.shutdown
		}
	}
	s.door.Close()
}

// killTunnels cuts every connection to the server, as a crashed server or a lost network
// would; the server itself keeps serving.
func (s *testServer) killTunnels() { s.door.cut() }

// freezeTunnels makes the server read nothing more from the tunnels open now, as a path
// that dropped every packet would, without closing them.
func (s *testServer) freezeTunnels() { s.door.freeze() }

// goAway shuts the current server down gracefully (a yamux GoAway to every tunnel, each
// closed once its streams end) and puts a new one behind the door for new tunnels, as a
// server being replaced behind a load balancer does.
func (s *testServer) goAway() {
	servers := s.serversNow()
	old := servers[len(servers)-1]
	old.shutdown = make(chan struct{})
	go func() {
		defer close(old.shutdown)
		old.srv.Shutdown(context.Background())
	}()
	<-old.ln.done // the old server takes no more tunnels
	s.start()
}

// handshakes counts the tunnels the servers authenticated.
func (s *testServer) handshakes() int {
	return s.sum("tessel_proxy_tunnels_total", "result", "ok")
}

// streams counts the stream requests the servers answered, whatever the answer.
func (s *testServer) streams() int { return s.sum("tessel_proxy_streams_total", "", "") }

// openTunnels counts the tunnels the servers hold open.
func (s *testServer) openTunnels() int { return s.sum("tessel_proxy_tunnels_open", "", "") }

// sum adds up the samples of metric name across servers, those with label=value when
// label is not empty.
func (s *testServer) sum(name, label, value string) int {
	s.t.Helper()
	total := 0.0
	for _, ss := range s.serversNow() {
		families, err := ss.reg.Gather()
		if err != nil {
			s.t.Fatal(err)
		}
		for _, f := range families {
			if f.GetName() != name {
				continue
			}
		samples:
			for _, m := range f.GetMetric() {
				if label != "" {
					for _, l := range m.GetLabel() {
						if l.GetName() == label && l.GetValue() != value {
							continue samples
						}
					}
				}
				total += m.GetCounter().GetValue() + m.GetGauge().GetValue()
			}
		}
	}
	return int(total)
}

// lastRequest is the last stream request the servers logged, answered or refused (the
// kind is logged only for streams that opened).
func (s *testServer) lastRequest() wire.StreamRequest {
	s.t.Helper()
	var last wire.StreamRequest
	for _, ss := range s.serversNow() {
		sc := bufio.NewScanner(strings.NewReader(ss.logs.String()))
		sc.Buffer(nil, 1<<20)
		for sc.Scan() {
			var line struct{ Msg, Target, Kind string }
			if json.Unmarshal(sc.Bytes(), &line) != nil || (line.Msg != "stream open" && line.Msg != "stream refused") {
				continue
			}
			host, port, err := net.SplitHostPort(line.Target)
			if err != nil {
				continue
			}
			p, _ := strconv.ParseUint(port, 10, 16)
			last = wire.StreamRequest{Host: host, Port: uint16(p)}
			switch line.Kind {
			case "net":
				last.Kind = wire.KindNet
			case "tls":
				last.Kind = wire.KindTLS
			}
		}
	}
	return last
}

// loopbackResolver resolves localhost and nothing else, so that no test asks a real DNS
// server about the names it makes up.
type loopbackResolver struct{}

func (loopbackResolver) LookupNetIP(_ context.Context, _, host string) ([]netip.Addr, error) {
	if strings.EqualFold(strings.TrimSuffix(host, "."), "localhost") {
		return []netip.Addr{netip.MustParseAddr("127.0.0.1"), netip.IPv6Loopback()}, nil
	}
	return nil, &net.DNSError{Err: "no such host", Name: host, IsNotFound: true}
}

// door is the address clients dial. It hands each connection to the server serving now and
// keeps hold of it, so that a test can cut it or stop the server reading it.
type door struct {
	ln     net.Listener
	conns  chan net.Conn
	closed chan struct{}
	wg     sync.WaitGroup

	mu   sync.Mutex
	held []*doorConn
}

func newDoor(t testing.TB) *door {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	d := &door{ln: ln, conns: make(chan net.Conn), closed: make(chan struct{})}
	d.wg.Add(1)
	go d.accept()
	return d
}

func (d *door) accept() {
	defer d.wg.Done()
	for {
		c, err := d.ln.Accept()
		if err != nil {
			return
		}
		dc := &doorConn{Conn: c, closed: make(chan struct{})}
		d.mu.Lock()
		d.held = append(d.held, dc)
		d.mu.Unlock()
		select {
		case d.conns <- dc:
		case <-d.closed:
			dc.Close()
			return
		}
	}
}

func (d *door) cut() {
	d.mu.Lock()
	defer d.mu.Unlock()
	for _, c := range d.held {
		c.Close()
	}
	d.held = nil
}

func (d *door) freeze() {
	d.mu.Lock()
	defer d.mu.Unlock()
	for _, c := range d.held {
		c.frozen.Store(true)
	}
}

func (d *door) Close() {
	close(d.closed)
	d.ln.Close()
	d.wg.Wait()
	d.cut()
}

// listener is a view of the door for one server's Serve: closing it stops that server
// accepting and leaves the door open.
func (d *door) listener() *doorListener {
	return &doorListener{d: d, done: make(chan struct{})}
}

type doorListener struct {
	d    *door
	once sync.Once
	done chan struct{}
}

func (l *doorListener) Accept() (net.Conn, error) {
	select {
	case c := <-l.d.conns:
		return c, nil
	case <-l.done:
		return nil, net.ErrClosed
	case <-l.d.closed:
		return nil, net.ErrClosed
	}
}

func (l *doorListener) Close() error   { l.once.Do(func() { close(l.done) }); return nil }
func (l *doorListener) Addr() net.Addr { return l.d.ln.Addr() }

// doorConn is the server's side of a connection through the door.
type doorConn struct {
	net.Conn
	frozen atomic.Bool
	once   sync.Once
	closed chan struct{}
}

func (c *doorConn) Read(p []byte) (int, error) {
	if c.frozen.Load() {
		<-c.closed
		return 0, net.ErrClosed
	}
	return c.Conn.Read(p)
}

func (c *doorConn) Close() error {
	c.once.Do(func() { close(c.closed) })
	return c.Conn.Close()
}

// refusingServer answers the handshake and then every stream request with the status that
// status holds and the message "test refusal". It is a fake because the real server cannot
// be made to answer each status on demand (a stream refused for its wire version, an
// internal error, a status value no server sends), and the test that uses it is about how
// the client maps each one. It counts the handshakes it answered.
func refusingServer(t *testing.T, status *atomic.Uint32) (proxyconfig.Config, *atomic.Int32) {
	t.Helper()
	cert, pool := testCert(t)
	ln, err := tls.Listen("tcp", "127.0.0.1:0", &tls.Config{Certificates: []tls.Certificate{cert}})
	if err != nil {
		t.Fatal(err)
	}
	handshakes := &atomic.Int32{}
	var wg sync.WaitGroup
	var mu sync.Mutex
	var sessions []*yamux.Session
	t.Cleanup(func() {
		ln.Close()
		mu.Lock()
		for _, s := range sessions {
			s.Close()
		}
		mu.Unlock()
		wg.Wait()
	})
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			if _, err := wire.ReadHello(c); err != nil || wire.WriteReply(c, wire.Reply{Status: wire.StatusOK}) != nil {
				c.Close()
				continue
			}
			handshakes.Add(1)
			sess, err := yamux.Server(c, wire.MuxConfig())
			if err != nil {
				c.Close()
				continue
			}
			mu.Lock()
			sessions = append(sessions, sess)
			mu.Unlock()
			wg.Add(1)
			go func() {
				defer wg.Done()
				for {
					st, err := sess.AcceptStream()
					if err != nil {
						return
					}
					if _, err := wire.ReadStreamRequest(st); err == nil {
						wire.WriteReply(st, wire.Reply{Status: wire.Status(status.Load()), Message: "test refusal"})
					}
					st.Close()
				}
			}()
		}
	}()
	cfg := proxyconfig.Config{Host: "127.0.0.1", Port: ln.Addr().(*net.TCPAddr).Port, RootCAs: pool, Idle: proxyconfig.IdleNever}
	return cfg, handshakes
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
