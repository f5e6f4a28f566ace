package proxyclient

import (
	"context"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tessel/tessel-proxy/proxyconfig"
	"github.com/tessel/tessel-proxy/proxyserver"
	"github.com/tessel/tessel-proxy/wire"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

const testToken = "test-token-0123456789"

func newTestDialer(t testing.TB, cfg proxyconfig.Config, token string, opts ...Option) *Dialer {
	t.Helper()
	cfg.Token = token
	d := NewDialer(cfg, nil, opts...)
	t.Cleanup(func() { d.Close() })
	return d
}

// eventually polls cond until it holds; it fails the test after a generous bound, which
// only a hung implementation reaches.
func eventually(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("gave up waiting for: %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func echoThrough(t *testing.T, d *Dialer, target string) string {
	t.Helper()
	c, err := d.DialContext(context.Background(), "tcp", target)
	if err != nil {
		t.Fatalf("dial %s: %v", target, err)
	}
	defer c.Close()
	if _, err := io.WriteString(c, "hello"); err != nil {
		t.Fatal(err)
	}
	if err := c.(interface{ CloseWrite() error }).CloseWrite(); err != nil {
		t.Fatal(err)
	}
	b, err := io.ReadAll(c)
	if err != nil {
		t.Fatalf("read: %v", err)
	}
	return string(b)
}

func TestDialThroughTunnel(t *testing.T) {
	srv := newTestServer(t, testToken)
	target := newEchoTarget(t)
	d := newTestDialer(t, srv.config(), testToken)

	if got := echoThrough(t, d, target.addr()); got != "echo:hello" {
		t.Fatalf("got %q through the tunnel, want %q", got, "echo:hello")
	}
	if n := srv.streams(); n != 1 {
		t.Fatalf("server saw %d streams, want 1 (the dial did not use the tunnel)", n)
	}
	req := srv.lastRequest()
	if req.Kind != wire.KindNet || req.Host != "127.0.0.1" {
		t.Fatalf("stream request %+v, want kind net to host 127.0.0.1 unresolved", req)
	}
	// A second dial reuses the tunnel.
	echoThrough(t, d, target.addr())
	if n := srv.handshakes(); n != 1 {
		t.Fatalf("%d tunnel handshakes for two dials, want 1", n)
	}
}

func TestConnAddrsAndDeadlines(t *testing.T) {
	srv := newTestServer(t, testToken)
	target := newEchoTarget(t)
	d := newTestDialer(t, srv.config(), testToken)
	c, err := d.DialContext(context.Background(), "tcp", target.addr())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if got := c.RemoteAddr().String(); got != target.addr() {
		t.Errorf("RemoteAddr %q, want the target %q", got, target.addr())
	}
	if c.LocalAddr() == nil || c.LocalAddr().Network() != "tcp" {
		t.Errorf("LocalAddr %v, want the tunnel's local TCP address", c.LocalAddr())
	}
	// The echo target answers only after our FIN, so this read can only end by deadline.
	c.SetReadDeadline(time.Now().Add(20 * time.Millisecond))
	_, err = c.Read(make([]byte, 1))
	var ne net.Error
	if !errors.As(err, &ne) || !ne.Timeout() {
		t.Fatalf("read past deadline: %v, want a net.Error with Timeout()", err)
	}
}

func TestHalfCloseFromTarget(t *testing.T) {
	srv := newTestServer(t, testToken)
	target := newBannerTarget(t, "banner")
	d := newTestDialer(t, srv.config(), testToken)

	c, err := d.DialContext(context.Background(), "tcp", target.addr())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	b, err := io.ReadAll(c) // ends at the target's FIN
	if err != nil || string(b) != "banner" {
		t.Fatalf("read %q, %v; want banner then EOF", b, err)
	}
	// Our direction is still open after the target's half-close.
	if _, err := io.WriteString(c, "late words"); err != nil {
		t.Fatalf("write after the target half-closed: %v", err)
	}
	c.(interface{ CloseWrite() error }).CloseWrite()
	if got := <-target.received; got != "late words" {
		t.Fatalf("target received %q, want %q", got, "late words")
	}
}

// dialAllAtOnce starts n dials to target together, closes each connection, and fails the
// test for every dial that failed.
func dialAllAtOnce(t *testing.T, d *Dialer, target string, n int) {
	t.Helper()
	var wg sync.WaitGroup
	errs := make(chan error, n)
	start := make(chan struct{})
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			c, err := d.DialContext(context.Background(), "tcp", target)
			if err != nil {
				errs <- err
				return
			}
			c.Close()
		}()
	}
	close(start)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Errorf("dial: %v", err)
	}
}

func TestConcurrentFirstDialsShareOneHandshake(t *testing.T) {
	srv := newTestServer(t, testToken)
	target := newEchoTarget(t)
	d := newTestDialer(t, srv.config(), testToken)

	const n = 16
	dialAllAtOnce(t, d, target.addr(), n)
	if got := srv.handshakes(); got != 1 {
		t.Fatalf("%d concurrent first dials made %d handshakes, want 1", n, got)
	}
}

func TestCancelledWaiterDoesNotCancelOthers(t *testing.T) {
	// A listener that accepts but answers nothing until released holds the handshake open.
	srv := newTestServer(t, testToken)
	gate, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer gate.Close()
	release := make(chan struct{})
	var fwd sync.WaitGroup
	fwd.Add(1)
	go func() {
		defer fwd.Done()
		c, err := gate.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		<-release
		up, err := net.Dial("tcp", srv.addr())
		if err != nil {
			return
		}
		defer up.Close()
		go func() { io.Copy(up, c); up.(*net.TCPConn).CloseWrite() }()
		io.Copy(c, up)
	}()
	cfg := srv.config()
	cfg.Port = gate.Addr().(*net.TCPAddr).Port
	d := newTestDialer(t, cfg, testToken)

	impatient, cancel := context.WithCancel(context.Background())
	results := make(chan error, 2)
	go func() { _, err := d.tun.get(impatient); results <- err }()
	go func() { _, err := d.tun.get(context.Background()); results <- err }()
	eventually(t, "both dials waiting on one handshake", func() bool {
		d.tun.mu.Lock()
		defer d.tun.mu.Unlock()
		return d.tun.pending != nil && d.tun.pending.waiters == 2
	})
	cancel()
	if err := <-results; !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled waiter got %v, want context.Canceled", err)
	}
	close(release)
	if err := <-results; err != nil {
		t.Fatalf("patient waiter got %v after the other gave up, want the tunnel", err)
	}
	if got := srv.handshakes(); got != 1 {
		t.Fatalf("%d handshakes, want 1", got)
	}
	d.Close()
	gate.Close()
	fwd.Wait()
}

func TestRefusalsMapToSentinels(t *testing.T) {
	cases := []struct {
		status wire.Status
		want   error
	}{
		{wire.StatusBadRequest, ErrBadRequest},
		{wire.StatusBadVersion, ErrBadVersion},
		{wire.StatusDNSFailure, ErrDNSFailure},
		{wire.StatusRefused, ErrRefused},
		{wire.StatusUnreachable, ErrUnreachable},
		{wire.StatusTimeout, ErrTimeout},
		{wire.StatusDenied, ErrDenied},
		{wire.StatusTLSFailure, ErrTLSFailure},
		{wire.StatusLimit, ErrLimit},
		{wire.StatusInternal, ErrInternal},
		{wire.Status(200), ErrProtocol},
	}
	var status atomic.Uint32
	cfg, handshakes := refusingServer(t, &status)
	d := newTestDialer(t, cfg, testToken)
	for _, tc := range cases {
		t.Run(tc.want.Error(), func(t *testing.T) {
			status.Store(uint32(tc.status))
			_, err := d.DialContext(context.Background(), "tcp", "db.example.test:5432")
			if !errors.Is(err, tc.want) {
				t.Fatalf("status %d: got %v, want errors.Is %v", tc.status, err, tc.want)
			}
			var we *wire.Error
			if !errors.As(err, &we) || we.Status != tc.status {
				t.Fatalf("status %d: got %v, want a *wire.Error with that status", tc.status, err)
			}
			if !strings.Contains(err.Error(), "db.example.test:5432") || !strings.Contains(err.Error(), "test refusal") {
				t.Fatalf("error %q should name the target and carry the proxy's message", err)
			}
		})
	}
	// Refused streams leave the tunnel usable.
	if got := handshakes.Load(); got != 1 {
		t.Fatalf("%d handshakes across refusals, want 1", got)
	}
}

func TestHandshakeFailures(t *testing.T) {
	srv := newTestServer(t, testToken)
	closedPort := func() int {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer ln.Close()
		return ln.Addr().(*net.TCPAddr).Port
	}()

	cases := []struct {
		name     string
		cfg      func(*proxyconfig.Config)
		token    string
		want     error
		wantText string
	}{
		{"wrong token", nil, "wrong-token", ErrAuthFailed, "refused the token"},
		{"untrusted certificate", func(c *proxyconfig.Config) { c.RootCAs = nil }, testToken, ErrProxyUntrusted, "PROXY_CERT"},
		{"unreachable", func(c *proxyconfig.Config) { c.Port = closedPort }, testToken, ErrProxyUnreachable,
			"127.0.0.1:" + strconv.Itoa(closedPort)},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			cfg := srv.config()
			if tc.cfg != nil {
				tc.cfg(&cfg)
			}
			d := newTestDialer(t, cfg, tc.token)
			err := d.Connect(context.Background())
			if !errors.Is(err, tc.want) {
				t.Fatalf("got %v, want errors.Is %v", err, tc.want)
			}
			if !strings.Contains(err.Error(), tc.wantText) {
				t.Fatalf("error %q should mention %q", err, tc.wantText)
			}
			if strings.Contains(err.Error(), tc.token) {
				t.Fatalf("error %q contains the token", err)
			}
			// A dial reports the same failure rather than hanging or going direct.
			_, err = d.DialContext(context.Background(), "tcp", "example.test:80")
			if !errors.Is(err, tc.want) {
				t.Fatalf("dial after failed handshake: %v, want %v", err, tc.want)
			}
		})
	}
}

func TestHandshakeTimeout(t *testing.T) {
	// Accepts TCP and never speaks TLS.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var held []net.Conn
	var mu sync.Mutex
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			held = append(held, c)
			mu.Unlock()
		}
	}()
	defer func() {
		ln.Close()
		<-done
		for _, c := range held {
			c.Close()
		}
	}()
	cfg := proxyconfig.Config{Host: "127.0.0.1", Port: ln.Addr().(*net.TCPAddr).Port, Idle: proxyconfig.IdleNever}
	d := newTestDialer(t, cfg, testToken, WithHandshakeTimeout(50*time.Millisecond))
	err = d.Connect(context.Background())
	if !errors.Is(err, ErrProxyUnreachable) || !strings.Contains(err.Error(), "no answer within") {
		t.Fatalf("silent proxy: got %v, want ErrProxyUnreachable saying it did not answer", err)
	}
}

func TestReconnectAfterServerKillsTunnel(t *testing.T) {
	srv := newTestServer(t, testToken)
	target := newEchoTarget(t)
	d := newTestDialer(t, srv.config(), testToken)

	c, err := d.DialContext(context.Background(), "tcp", target.addr())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	srv.killTunnels()
	_, err = c.Read(make([]byte, 1))
	if !errors.Is(err, ErrTunnelLost) {
		t.Fatalf("read on a killed tunnel: %v, want ErrTunnelLost (not a clean EOF)", err)
	}
	if got := echoThrough(t, d, target.addr()); got != "echo:hello" {
		t.Fatalf("after reconnect got %q", got)
	}
	if got := srv.handshakes(); got != 2 {
		t.Fatalf("%d handshakes, want 2 (one per tunnel)", got)
	}
}

func TestKeepaliveDetectsDeadTunnel(t *testing.T) {
	srv := newTestServer(t, testToken)
	target := newEchoTarget(t)
	mux := wire.MuxConfig()
	mux.KeepAliveInterval = 20 * time.Millisecond
	mux.ConnectionWriteTimeout = 100 * time.Millisecond
	d := newTestDialer(t, srv.config(), testToken, WithMuxConfig(mux))

	if err := d.Connect(context.Background()); err != nil {
		t.Fatal(err)
	}
	srv.freezeTunnels()
	d.tun.mu.Lock()
	first := d.tun.cur
	d.tun.mu.Unlock()
	eventually(t, "keepalive to notice the silent proxy", first.sess.IsClosed)
	if got := echoThrough(t, d, target.addr()); got != "echo:hello" {
		t.Fatalf("after the dead tunnel got %q", got)
	}
	if got := srv.handshakes(); got != 2 {
		t.Fatalf("%d handshakes, want 2", got)
	}
}

// fakeTimers replaces the idle timer so that a test fires it by hand.
type fakeTimers struct {
	mu     sync.Mutex
	armed  []time.Duration
	fire   func()
	active bool
}

func (f *fakeTimers) afterFunc(d time.Duration, fn func()) func() bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.armed = append(f.armed, d)
	f.fire, f.active = fn, true
	return func() bool {
		f.mu.Lock()
		defer f.mu.Unlock()
		was := f.active
		f.active = false
		return was
	}
}

func (f *fakeTimers) isArmed() bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.active
}

// fireLate runs the last timer's function even if it was stopped, as a timer that had
// already fired when Stop was called would.
func (f *fakeTimers) fireLate() {
	f.mu.Lock()
	fn := f.fire
	f.active = false
	f.mu.Unlock()
	fn()
}

func TestIdle(t *testing.T) {
	target := newEchoTarget(t)
	open := func(t *testing.T, idle time.Duration) (*testServer, *Dialer, *fakeTimers) {
		srv := newTestServer(t, testToken)
		cfg := srv.config()
		cfg.Idle = idle
		d := newTestDialer(t, cfg, testToken)
		ft := &fakeTimers{}
		d.tun.afterFunc = ft.afterFunc
		return srv, d, ft
	}
	tunnelOpen := func(d *Dialer) bool {
		d.tun.mu.Lock()
		defer d.tun.mu.Unlock()
		return d.tun.cur != nil && !d.tun.cur.sess.IsClosed()
	}

	t.Run("0 closes when the last connection closes", func(t *testing.T) {
		srv, d, _ := open(t, 0)
		c1, err := d.Dial("tcp", target.addr())
		if err != nil {
			t.Fatal(err)
		}
		c2, err := d.Dial("tcp", target.addr())
		if err != nil {
			t.Fatal(err)
		}
		c1.Close()
		if !tunnelOpen(d) {
			t.Fatal("tunnel closed while a connection was still open")
		}
		c2.Close()
		if tunnelOpen(d) {
			t.Fatal("tunnel still open after its last connection closed with PROXY_IDLE=0")
		}
		eventually(t, "server to see the tunnel close", func() bool { return srv.openTunnels() == 0 })
		echoThrough(t, d, target.addr())
		if got := srv.handshakes(); got != 2 {
			t.Fatalf("%d handshakes, want 2 (the next dial reopens)", got)
		}
	})

	t.Run("N arms a timer, a new connection disarms it", func(t *testing.T) {
		srv, d, ft := open(t, 90*time.Second)
		echoThrough(t, d, target.addr())
		if !ft.isArmed() || ft.armed[len(ft.armed)-1] != 90*time.Second {
			t.Fatalf("after the last connection closed: timers %v armed=%v, want a 90s timer armed", ft.armed, ft.isArmed())
		}
		c, err := d.Dial("tcp", target.addr())
		if err != nil {
			t.Fatal(err)
		}
		if ft.isArmed() {
			t.Fatal("idle timer still armed while a connection is open")
		}
		stale := ft.fire
		ft.fireLate() // a timer that fired just as the dial came in must not close the tunnel
		if !tunnelOpen(d) {
			t.Fatal("a late idle timer closed a tunnel in use")
		}
		c.Close() // re-arms
		stale()   // the earlier timer, stopped too late, fires after the re-arm
		if !tunnelOpen(d) {
			t.Fatal("a stale idle timer closed the tunnel before its idle time")
		}
		ft.fireLate()
		if tunnelOpen(d) {
			t.Fatal("tunnel still open after the idle timer fired")
		}
		eventually(t, "server to see the tunnel close", func() bool { return srv.openTunnels() == 0 })
	})

	t.Run("never keeps the tunnel", func(t *testing.T) {
		_, d, ft := open(t, proxyconfig.IdleNever)
		echoThrough(t, d, target.addr())
		if len(ft.armed) != 0 {
			t.Fatalf("PROXY_IDLE=never armed idle timers %v", ft.armed)
		}
		if !tunnelOpen(d) {
			t.Fatal("tunnel closed with PROXY_IDLE=never")
		}
	})
}

func TestCloseEndsConnectionsAndDials(t *testing.T) {
	srv := newTestServer(t, testToken)
	target := newEchoTarget(t)
	cfg := srv.config()
	cfg.Token = testToken
	d := NewDialer(cfg, nil)
	c, err := d.Dial("tcp", target.addr())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	d.Close()
	if _, err := c.Read(make([]byte, 1)); err == nil {
		t.Fatal("read on a connection of a closed Dialer succeeded")
	}
	if _, err := d.Dial("tcp", target.addr()); !errors.Is(err, ErrClosed) {
		t.Fatalf("dial after Close: %v, want ErrClosed", err)
	}
}

func TestRoute(t *testing.T) {
	local, err := proxyconfig.ParseLocal("10.0.0.0/8 fd00::/8 .corp.example localhost")
	if err != nil {
		t.Fatal(err)
	}
	cfg := proxyconfig.Config{Host: "proxy.example", Port: 443, Local: local}
	cases := []struct {
		name    string
		cfg     proxyconfig.Config
		token   string
		host    string
		tls     bool
		direct  bool
		because string
	}{
		{"no token", cfg, "", "example.com", false, true, ReasonNoToken},
		{"tls untrusted", cfg, "t", "example.com", true, true, ReasonTLSDirect},
		{"local CIDR", cfg, "t", "10.1.2.3", false, true, "PROXY_LOCAL entry 10.0.0.0/8 matches"},
		{"local IPv6 in brackets", cfg, "t", "[fd00::1]", false, true, "PROXY_LOCAL entry fd00::/8 matches"},
		{"local suffix", cfg, "t", "db.corp.example", false, true, "PROXY_LOCAL entry .corp.example matches"},
		{"local before trusted tls", withTrusted(cfg), "t", "localhost", true, true, "PROXY_LOCAL entry localhost matches"},
		{"public name", cfg, "t", "example.com", false, false, ReasonTunnel},
		{"name never matches a CIDR", cfg, "t", "10.example.com", false, false, ReasonTunnel},
		{"trusted tls", withTrusted(cfg), "t", "example.com", true, false, ReasonTunnel},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			d := newTestDialer(t, tc.cfg, tc.token)
			got := d.Route(tc.host)
			if tc.tls {
				got = d.RouteTLS(tc.host)
			}
			if got.Direct != tc.direct || got.Reason != tc.because {
				t.Fatalf("route %s: %+v, want direct=%v because %q", tc.host, got, tc.direct, tc.because)
			}
		})
	}
}

func withTrusted(c proxyconfig.Config) proxyconfig.Config { c.Trusted = true; return c }

func TestForcedDirectAndLocalSkipTheTunnel(t *testing.T) {
	srv := newTestServer(t, testToken)
	target := newEchoTarget(t)
	cfg := srv.config()
	d := newTestDialer(t, cfg, testToken)

	c, err := d.DialContext(WithDirect(context.Background()), "tcp", target.addr())
	if err != nil {
		t.Fatal(err)
	}
	c.Close()
	if _, ok := c.(*net.TCPConn); !ok {
		t.Fatalf("forced direct dial returned %T, want a plain TCP connection", c)
	}

	cfg.Local, _ = proxyconfig.ParseLocal("127.0.0.0/8")
	d2 := newTestDialer(t, cfg, testToken)
	if got := echoThrough(t, d2, target.addr()); got != "echo:hello" {
		t.Fatalf("direct echo got %q", got)
	}
	if n := srv.streams(); n != 0 || srv.handshakes() != 0 {
		t.Fatalf("server saw %d streams, %d tunnels; direct routes must not touch the proxy", n, srv.handshakes())
	}
}

func TestTLSDialer(t *testing.T) {
	https := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "secret page")
	}))
	defer https.Close()
	roots := https.Client().Transport.(*http.Transport).TLSClientConfig.RootCAs

	get := func(t *testing.T, d *Dialer) string {
		tr := &http.Transport{DialTLSContext: d.DialTLSContext}
		defer tr.CloseIdleConnections()
		resp, err := (&http.Client{Transport: tr}).Get(https.URL)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return string(b)
	}

	t.Run("trusted: the proxy makes the TLS connection", func(t *testing.T) {
		srv := newTestServer(t, testToken, func(c *proxyserver.Config) { c.TargetRootCAs = roots })
		d := newTestDialer(t, withTrusted(srv.config()), testToken)
		if got := get(t, d); got != "secret page" {
			t.Fatalf("got %q", got)
		}
		kind := srv.lastRequest().Kind
		if kind != wire.KindTLS {
			t.Fatalf("stream kind %v, want tls", kind)
		}
	})
	t.Run("not trusted: direct TLS, proxy never sees it", func(t *testing.T) {
		srv := newTestServer(t, testToken)
		d := newTestDialer(t, srv.config(), testToken, WithTLSConfig(&tls.Config{RootCAs: roots}))
		if got := get(t, d); got != "secret page" {
			t.Fatalf("got %q", got)
		}
		if n := srv.streams(); n != 0 {
			t.Fatalf("proxy saw %d streams for an untrusted TLS dial", n)
		}
	})
}

func TestDialerInHTTPTransport(t *testing.T) {
	srv := newTestServer(t, testToken)
	web := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "hello from "+r.Host)
	}))
	defer web.Close()
	d := newTestDialer(t, srv.config(), testToken)
	tr := &http.Transport{DialContext: d.DialContext}
	defer tr.CloseIdleConnections()
	resp, err := (&http.Client{Transport: tr}).Get(web.URL)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if !strings.HasPrefix(string(b), "hello from") || srv.streams() != 1 {
		t.Fatalf("got %q with %d streams", b, srv.streams())
	}
}

func TestGoAwayMovesNewConnectionsToANewTunnel(t *testing.T) {
	srv := newTestServer(t, testToken)
	target := newEchoTarget(t)
	d := newTestDialer(t, srv.config(), testToken)

	old, err := d.Dial("tcp", target.addr())
	if err != nil {
		t.Fatal(err)
	}
	srv.goAway()
	// Whether the GoAway or our stream gets there first, the dial must succeed.
	if got := echoThrough(t, d, target.addr()); got != "echo:hello" {
		t.Fatalf("dial after GoAway got %q", got)
	}
	eventually(t, "a second tunnel", func() bool { return srv.handshakes() == 2 })
	// The connection opened before the GoAway still works.
	io.WriteString(old, "still here")
	old.(interface{ CloseWrite() error }).CloseWrite()
	if b, err := io.ReadAll(old); err != nil || string(b) != "echo:still here" {
		t.Fatalf("old connection after GoAway: %q, %v", b, err)
	}
	old.Close()
	eventually(t, "the retired tunnel to close with its last connection", func() bool { return srv.openTunnels() == 1 })
}

func TestCloseDuringHandshake(t *testing.T) {
	// Accepts and says nothing, so the handshake is pending when Close comes.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	accepted := make(chan net.Conn, 1)
	go func() {
		if c, err := ln.Accept(); err == nil {
			accepted <- c
		}
	}()
	cfg := proxyconfig.Config{Host: "127.0.0.1", Port: ln.Addr().(*net.TCPAddr).Port, Idle: proxyconfig.IdleNever, Token: testToken}
	d := NewDialer(cfg, nil)
	result := make(chan error, 1)
	go func() { _, err := d.Dial("tcp", "example.test:80"); result <- err }()
	c := <-accepted
	defer c.Close()
	d.Close()
	if err := <-result; !errors.Is(err, ErrClosed) {
		t.Fatalf("dial pending when the Dialer closed: %v, want ErrClosed", err)
	}
}

func TestIdleZeroBurstSharesOneTunnel(t *testing.T) {
	srv := newTestServer(t, testToken)
	target := newClosingTarget(t)
	cfg := srv.config()
	cfg.Idle = 0
	d := newTestDialer(t, cfg, testToken)

	const n = 32
	dialAllAtOnce(t, d, target, n)
	if got := srv.handshakes(); got != 1 {
		t.Fatalf("%d overlapping first dials with PROXY_IDLE=0 made %d handshakes, want 1", n, got)
	}
}

// TestIdleZeroKeepsTunnelForDialInFlight: with PROXY_IDLE=0, a connection closing while
// another dial already holds the tunnel must not close it under that dial.
func TestIdleZeroKeepsTunnelForDialInFlight(t *testing.T) {
	srv := newTestServer(t, testToken)
	target := newEchoTarget(t)
	cfg := srv.config()
	cfg.Idle = 0
	d := newTestDialer(t, cfg, testToken)

	c, err := d.Dial("tcp", target.addr())
	if err != nil {
		t.Fatal(err)
	}
	tun, err := d.tun.get(context.Background()) // a second dial, between tunnel and stream
	if err != nil {
		t.Fatal(err)
	}
	c.Close()
	if tun.sess.IsClosed() {
		t.Fatal("PROXY_IDLE=0 closed the tunnel while a dial held it")
	}
	d.tun.release(tun)
	if !tun.sess.IsClosed() {
		t.Fatal("tunnel still open after its last user left with PROXY_IDLE=0")
	}
	if got := srv.handshakes(); got != 1 {
		t.Fatalf("%d handshakes, want 1", got)
	}
}

// newClosingTarget is a loopback TCP server that accepts connections and closes them.
func newClosingTarget(t testing.TB) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()
	t.Cleanup(func() { ln.Close(); <-done })
	return ln.Addr().String()
}
