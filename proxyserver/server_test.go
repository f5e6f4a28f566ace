package proxyserver

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/yamux"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/prometheus/client_golang/prometheus/testutil/promlint"

	"github.com/tessel/tessel-proxy/wire"
)

func TestStreamRelaysToLoopbackEchoWhenAllowed(t *testing.T) {
	h := newHarness(t, allowLoopback)
	host, port := echoServer(t)
	sess := h.tunnel()

	// The request and the first payload go in one write, as a client sends them.
	stream, reply := open(t, sess, wire.KindNet, host, port, []byte("hello "))
	if reply.Status != wire.StatusOK {
		t.Fatalf("stream to %s:%d: %v", host, port, reply.Err())
	}
	big := bytes.Repeat([]byte("0123456789abcdef"), 1<<16) // 1 MiB, more than one window
	go func() {
		stream.Write(big)
		stream.Close()
	}()
	got := readAllTimeout(t, stream)
	if want := append([]byte("hello "), big...); !bytes.Equal(got, want) {
		t.Fatalf("echo returned %d bytes, want %d", len(got), len(want))
	}
}

func TestHandshakeWrongTokenIsRefusedAndNotLogged(t *testing.T) {
	h := newHarness(t)
	const wrong = "wrong-token-that-must-not-be-logged"
	reply, conn := h.handshake(wrong)
	if reply.Status != wire.StatusAuthFailed {
		t.Fatalf("wrong token: status %v, want auth failed", reply.Status)
	}
	if strings.Contains(reply.Message, wrong) {
		t.Errorf("reply message %q contains the token", reply.Message)
	}
	// The server closes after a refusal.
	_ = conn.SetReadDeadline(time.Now().Add(20 * time.Second))
	if n, err := conn.Read(make([]byte, 1)); err == nil || n > 0 {
		t.Fatalf("connection still open after auth failure (read %d, %v)", n, err)
	}
	// A good tunnel too, so both tokens had their chance to reach the log.
	h.tunnel()
	h.srv.Close()
	logs := h.logs.String()
	if !strings.Contains(logs, "authentication failed") {
		t.Errorf("the refusal was not logged:\n%s", logs)
	}
	if strings.Contains(logs, wrong) {
		t.Errorf("the wrong token appears in the log:\n%s", logs)
	}
}

func TestHandshakeBadMagicClosesWithoutReply(t *testing.T) {
	h := newHarness(t)
	conn := h.dialTLS()
	// (An HTTP request is answered by the WebSocket endpoint instead: ws_test.go.)
	if _, err := io.WriteString(conn, "SSH-2.0-OpenSSH_9.2\r\n"); err != nil {
		t.Fatal(err)
	}
	got := readAllTimeout(t, conn)
	if len(got) != 0 {
		t.Fatalf("server answered a non-client with %q; want a close without reply", got)
	}
}

func TestHandshakeBadVersion(t *testing.T) {
	h := newHarness(t)
	conn := h.dialTLS()
	if err := wire.WriteHello(conn, wire.Hello{Version: 9, Token: testToken}); err != nil {
		t.Fatal(err)
	}
	reply, err := wire.ReadReply(conn)
	if err != nil {
		t.Fatal(err)
	}
	if reply.Status != wire.StatusBadVersion {
		t.Fatalf("version 9: status %v, want bad version", reply.Status)
	}
}

func TestHandshakeDeadlineDropsSilentClients(t *testing.T) {
	h := newHarness(t, func(c *Config) { c.HandshakeTimeout = 100 * time.Millisecond })

	// Silent before TLS.
	raw, err := net.Dial("tcp", h.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()
	_ = raw.SetReadDeadline(time.Now().Add(20 * time.Second))
	if _, err := io.ReadAll(raw); err != nil {
		t.Fatalf("silent TCP client: want the server to close the connection, got %v", err)
	}

	// Silent after TLS, before the Hello. On a loaded machine the deadline may already cut
	// the TLS handshake short; either way the server must be the one that closes.
	raw2, err := net.Dial("tcp", h.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer raw2.Close()
	_ = raw2.SetDeadline(time.Now().Add(20 * time.Second))
	conn := tls.Client(raw2, &tls.Config{RootCAs: h.roots, ServerName: "127.0.0.1"})
	if err := conn.Handshake(); err != nil {
		if errors.Is(err, os.ErrDeadlineExceeded) {
			t.Fatalf("TLS handshake hung instead of being closed: %v", err)
		}
		return
	}
	if got, err := io.ReadAll(conn); err != nil || len(got) != 0 {
		t.Fatalf("silent TLS client: got %q, %v; want the server to close", got, err)
	}
}

func TestStreamRefusals(t *testing.T) {
	untrustedHost, untrustedPort := tlsTarget(t, nil)
	tests := []struct {
		name   string
		kind   wire.Kind
		host   string
		port   uint16
		allow  bool // loopback allowed
		config func(*Config)
		want   wire.Status
	}{
		{name: "loopback without allow", host: "127.0.0.1", port: 80, want: wire.StatusDenied},
		{name: "localhost resolves to loopback", host: "localhost", port: 80, want: wire.StatusDenied},
		{name: "decimal IPv4 spelling", host: "2130706433", port: 80, want: wire.StatusDenied},
		{name: "octal IPv4 spelling", host: "0177.0.0.1", port: 80, want: wire.StatusDenied},
		{name: "hex short IPv4 spelling", host: "0x7f.1", port: 80, want: wire.StatusDenied},
		{name: "IPv4-mapped loopback", host: "::ffff:127.0.0.1", port: 80, want: wire.StatusDenied},
		{name: "bracketed IPv6 loopback", host: "[::1]", port: 80, want: wire.StatusDenied},
		{name: "private literal", host: "10.1.2.3", port: 80, want: wire.StatusDenied},
		{name: "metadata", host: "169.254.169.254", port: 80, want: wire.StatusDenied},
		{name: "NAT64 of private", host: "64:ff9b::10.0.0.1", port: 80, want: wire.StatusDenied},
		{name: "invalid TLD", host: "nothing-here.invalid", port: 80, want: wire.StatusDNSFailure},
		{name: "refused", host: "127.0.0.1", port: closedPort(t), allow: true, want: wire.StatusRefused},
		{name: "untrusted TLS target", kind: wire.KindTLS, host: untrustedHost, port: untrustedPort, allow: true, want: wire.StatusTLSFailure},
		{name: "tls streams disabled", kind: wire.KindTLS, host: untrustedHost, port: untrustedPort, allow: true,
			config: func(c *Config) { c.DisableTLSStreams = true }, want: wire.StatusDenied},
		{name: "unreachable", host: "198.18.0.1", port: 80,
			config: func(c *Config) {
				// The benchmarking range is refused by default: open it, and dial from a
				// namespace where it leads nowhere.
				c.Policy = &Policy{Allow: mustPrefixes("198.18.0.0/15")}
				c.Dialer = isolatedDialer{t}
			}, want: wire.StatusUnreachable},
		{name: "timeout", host: "127.0.0.1", port: fullBacklogAt(t, [4]byte{127, 0, 0, 1}, 0), allow: true,
			config: func(c *Config) { c.DialTimeout = 200 * time.Millisecond }, want: wire.StatusTimeout},
		{name: "unknown kind", kind: 7, host: "127.0.0.1", port: 80, want: wire.StatusBadRequest},
		{name: "control character in host", host: "a\x00b", port: 80, want: wire.StatusBadRequest},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dialer := &recordingDialer{}
			h := newHarness(t, func(c *Config) {
				if tt.allow {
					allowLoopback(c)
				} else {
					// Nothing should be dialed at all: prove it.
					c.Dialer = dialer
				}
				if tt.config != nil {
					tt.config(c)
				}
			})
			kind := tt.kind
			if kind == 0 {
				kind = wire.KindNet
			}
			sess := h.tunnel()
			stream, reply := open(t, sess, kind, tt.host, tt.port, []byte("payload"))
			if reply.Status != tt.want {
				t.Fatalf("%s: status %v (%q), want %v", tt.host, reply.Status, reply.Message, tt.want)
			}
			if reply.Message == "" {
				t.Errorf("refusal without a message")
			}
			t.Logf("%s: %v", tt.host, reply.Err())
			if calls := dialer.Calls(); len(calls) > 0 {
				t.Errorf("server dialed %v for a refused target", calls)
			}
			// The server closes the stream after a refusal.
			if rest := readAllTimeout(t, stream); len(rest) != 0 {
				t.Errorf("bytes after refusal: %q", rest)
			}
		})
	}
}

// fakeResolver answers from a table; unknown names are NXDOMAIN.
type fakeResolver map[string][]netip.Addr

func (r fakeResolver) LookupNetIP(_ context.Context, _, host string) ([]netip.Addr, error) {
	if addrs, ok := r[host]; ok {
		return addrs, nil
	}
	return nil, &net.DNSError{Err: "no such host", Name: host, IsNotFound: true}
}

func TestStreamResolvedAddressesAreJudgedAndTriedInOrder(t *testing.T) {
	host, port := echoServer(t)
	resolver := fakeResolver{
		"private.example": {netip.MustParseAddr("192.168.1.1")},
		// The first address is denied, the second allowed by --allow and listening.
		"mixed.example": {netip.MustParseAddr("10.9.9.9"), netip.MustParseAddr(host)},
	}
	h := newHarness(t, func(c *Config) {
		c.Resolver = resolver
		c.Policy = &Policy{Allow: mustPrefixes("127.0.0.1/32")}
	})
	sess := h.tunnel()

	if _, reply := open(t, sess, wire.KindNet, "nxdomain.example", port, nil); reply.Status != wire.StatusDNSFailure {
		t.Errorf("NXDOMAIN: status %v, want dns failure", reply.Status)
	}
	if _, reply := open(t, sess, wire.KindNet, "private.example", port, nil); reply.Status != wire.StatusDenied {
		t.Errorf("name resolving to a private address: status %v, want denied", reply.Status)
	}
	stream, reply := open(t, sess, wire.KindNet, "mixed.example", port, []byte("ping"))
	if reply.Status != wire.StatusOK {
		t.Fatalf("mixed.example: %v", reply.Err())
	}
	stream.Close()
	if got := readAllTimeout(t, stream); string(got) != "ping" {
		t.Errorf("echo via mixed.example: %q", got)
	}
}

func TestHalfCloseBothWays(t *testing.T) {
	// The target reads until the client's FIN, then answers and closes: the client's
	// half-close must reach it, and the answer must come back after it.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	targetGot := make(chan string, 2)
	go func() {
		for i := 0; i < 2; i++ {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			if i == 0 {
				b, _ := io.ReadAll(c) // until the client's FIN
				targetGot <- string(b)
				io.WriteString(c, "answer after your FIN")
				c.Close()
				continue
			}
			// Second connection: the target finishes first, then still reads.
			io.WriteString(c, "target done")
			c.(*net.TCPConn).CloseWrite()
			b, _ := io.ReadAll(c)
			targetGot <- string(b)
			c.Close()
		}
	}()
	port := ln.Addr().(*net.TCPAddr).AddrPort().Port()
	h := newHarness(t, allowLoopback)
	sess := h.tunnel()

	stream, reply := open(t, sess, wire.KindNet, "127.0.0.1", port, []byte("question"))
	if reply.Status != wire.StatusOK {
		t.Fatal(reply.Err())
	}
	stream.Close() // FIN: client -> target
	if got := <-targetGot; got != "question" {
		t.Errorf("target read %q before EOF", got)
	}
	if got := readAllTimeout(t, stream); string(got) != "answer after your FIN" {
		t.Errorf("client read %q", got)
	}

	stream, reply = open(t, sess, wire.KindNet, "127.0.0.1", port, nil)
	if reply.Status != wire.StatusOK {
		t.Fatal(reply.Err())
	}
	if got := readAllTimeout(t, stream); string(got) != "target done" {
		t.Errorf("client read %q before the target's FIN", got)
	}
	if _, err := io.WriteString(stream, "still talking"); err != nil {
		t.Fatalf("write after the target's FIN: %v", err)
	}
	stream.Close()
	if got := <-targetGot; got != "still talking" {
		t.Errorf("target read %q after its own FIN", got)
	}
}

type tlsTargetRoots struct{ pool *x509.CertPool }

// tlsTarget starts a loopback TLS server for 127.0.0.1 that sends "tls hello" and closes. It
// returns the pool that trusts it through roots (nil: a pool nobody uses).
func tlsTarget(t *testing.T, roots **tlsTargetRoots) (string, uint16) {
	t.Helper()
	cert, pool, _ := testCert(t, "127.0.0.1")
	if roots != nil {
		*roots = &tlsTargetRoots{pool: pool}
	}
	ln, err := tls.Listen("tcp", "127.0.0.1:0", &tls.Config{Certificates: []tls.Certificate{cert}})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	t.Cleanup(func() { ln.Close(); <-done })
	go func() {
		defer close(done)
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			func() {
				defer c.Close()
				_ = c.SetDeadline(time.Now().Add(20 * time.Second))
				if err := c.(*tls.Conn).Handshake(); err != nil {
					return
				}
				io.WriteString(c, "tls hello")
			}()
		}
	}()
	ap := ln.Addr().(*net.TCPAddr).AddrPort()
	return ap.Addr().String(), ap.Port()
}

func TestTLSStreamVerifiesTargetAndRelaysPlaintext(t *testing.T) {
	var roots *tlsTargetRoots
	host, port := tlsTarget(t, &roots)
	h := newHarness(t, allowLoopback, func(c *Config) { c.TargetRootCAs = roots.pool })
	sess := h.tunnel()
	stream, reply := open(t, sess, wire.KindTLS, host, port, nil)
	if reply.Status != wire.StatusOK {
		t.Fatalf("tls stream: %v", reply.Err())
	}
	stream.Close()
	if got := readAllTimeout(t, stream); string(got) != "tls hello" {
		t.Fatalf("plaintext from the TLS target: %q", got)
	}
}

func TestMaxStreamsPerTunnel(t *testing.T) {
	host, port := echoServer(t)
	h := newHarness(t, allowLoopback, func(c *Config) { c.MaxStreams = 2 })
	sess := h.tunnel()
	first, r1 := open(t, sess, wire.KindNet, host, port, nil)
	_, r2 := open(t, sess, wire.KindNet, host, port, nil)
	_, r3 := open(t, sess, wire.KindNet, host, port, nil)
	if r1.Status != wire.StatusOK || r2.Status != wire.StatusOK {
		t.Fatalf("first two streams: %v, %v", r1.Err(), r2.Err())
	}
	if r3.Status != wire.StatusLimit {
		t.Fatalf("third stream with max 2: status %v, want limit", r3.Status)
	}
	// Ending a stream frees its place.
	first.Close()
	readAllTimeout(t, first)
	var r4 wire.Reply
	for range 100 {
		if _, r4 = open(t, sess, wire.KindNet, host, port, nil); r4.Status == wire.StatusOK {
			break
		}
		time.Sleep(10 * time.Millisecond) // the server notices the end of the relay asynchronously
	}
	if r4.Status != wire.StatusOK {
		t.Fatalf("after one stream ended: %v", r4.Err())
	}
}

func TestTunnelClosesWhenAuthenticationExpires(t *testing.T) {
	host, port := echoServer(t)
	h := newHarness(t, allowLoopback, func(c *Config) {
		c.Authenticator = expiringAuth{lifetime: time.Second}
	})
	sess := h.tunnel()
	stream, reply := open(t, sess, wire.KindNet, host, port, nil)
	if reply.Status != wire.StatusOK {
		t.Fatal(reply.Err())
	}
	select {
	case <-sess.CloseChan():
	case <-time.After(20 * time.Second):
		t.Fatal("tunnel still open long after its authentication expired")
	}
	if _, err := stream.Write([]byte("x")); err == nil {
		t.Error("stream still writable after the tunnel closed")
	}
	if !strings.Contains(h.logs.String(), "expired") {
		t.Errorf("expiry not logged:\n%s", h.logs)
	}
}

// expiringAuth accepts testToken for lifetime from the moment it is presented, as an OAuth
// access token issued just then would be.
type expiringAuth struct{ lifetime time.Duration }

func (a expiringAuth) Authenticate(_ context.Context, token string) (Identity, error) {
	if token != testToken {
		return Identity{}, ErrTokenRefused
	}
	return Identity{Subject: "expiring", Expiry: time.Now().Add(a.lifetime)}, nil
}

func TestShutdownWaitsForStreamsThenCloses(t *testing.T) {
	host, port := echoServer(t)
	h := newHarness(t, allowLoopback)
	sess := h.tunnel()
	stream, reply := open(t, sess, wire.KindNet, host, port, nil)
	if reply.Status != wire.StatusOK {
		t.Fatal(reply.Err())
	}
	idle := h.tunnel() // a second tunnel with no stream: closed at once

	shutdownDone := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		shutdownDone <- h.srv.Shutdown(ctx)
	}()
	select {
	case <-idle.CloseChan():
	case <-time.After(20 * time.Second):
		t.Fatal("idle tunnel not closed by Shutdown")
	}
	// The open stream keeps working during the drain.
	if _, err := io.WriteString(stream, "still here"); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, len("still here"))
	_ = stream.SetReadDeadline(time.Now().Add(20 * time.Second))
	if _, err := io.ReadFull(stream, buf); err != nil || string(buf) != "still here" {
		t.Fatalf("echo during shutdown: %q, %v", buf, err)
	}
	select {
	case err := <-shutdownDone:
		t.Fatalf("Shutdown returned (%v) while a stream was open", err)
	default:
	}
	// The GoAway reached the client: no new streams on this tunnel.
	for i := 0; ; i++ {
		s, err := sess.OpenStream()
		if err != nil {
			if !errors.Is(err, yamux.ErrRemoteGoAway) {
				t.Fatalf("open after GoAway: %v, want ErrRemoteGoAway", err)
			}
			break
		}
		s.Close()
		if i > 100 {
			t.Fatal("no GoAway received")
		}
		time.Sleep(10 * time.Millisecond)
	}
	// No new tunnels either.
	if c, err := net.Dial("tcp", h.addr); err == nil {
		c.Close()
		t.Fatal("listener still accepting during shutdown")
	}

	stream.Close()
	readAllTimeout(t, stream)
	if err := <-shutdownDone; err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
	select {
	case <-sess.CloseChan():
	case <-time.After(20 * time.Second):
		t.Fatal("tunnel not closed after its last stream ended")
	}
}

func TestShutdownPastDeadlineClosesEverything(t *testing.T) {
	host, port := echoServer(t)
	h := newHarness(t, allowLoopback)
	sess := h.tunnel()
	stream, reply := open(t, sess, wire.KindNet, host, port, nil)
	if reply.Status != wire.StatusOK {
		t.Fatal(reply.Err())
	}
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if err := h.srv.Shutdown(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Shutdown with an open stream past its deadline: %v", err)
	}
	select {
	case <-sess.CloseChan():
	case <-time.After(20 * time.Second):
		t.Fatal("tunnel left open after a forced shutdown")
	}
	_ = stream
}

func TestTokensFileReload(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "tokens")
	write := func(content string, mtime time.Time) {
		t.Helper()
		if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		// Same-second rewrites of equal size would keep the stamp: move mtime explicitly.
		if err := os.Chtimes(path, mtime, mtime); err != nil {
			t.Fatal(err)
		}
	}
	base := time.Now().Add(-time.Hour)
	write("# team tokens\ntoken-alpha\n\n", base)

	h := newHarness(t, func(c *Config) {
		tf, err := NewTokensFile(path, c.Logger)
		if err != nil {
			t.Fatal(err)
		}
		c.Authenticator = tf
	})
	status := func(token string) wire.Status {
		t.Helper()
		reply, conn := h.handshake(token)
		conn.Close()
		return reply.Status
	}
	if s := status("token-alpha"); s != wire.StatusOK {
		t.Fatalf("listed token: %v", s)
	}
	if s := status("token-beta"); s != wire.StatusAuthFailed {
		t.Fatalf("unlisted token: %v", s)
	}

	beta := "token-beta"
	write(fmt.Sprintf("sha256:%x\n", sha256Sum(beta)), base.Add(time.Minute))
	if s := status("token-beta"); s != wire.StatusOK {
		t.Fatalf("token added by digest after reload: %v", s)
	}
	if s := status("token-alpha"); s != wire.StatusAuthFailed {
		t.Fatalf("token removed from the file still accepted: %v", s)
	}

	write("token-gamma\nsha256:nothex-secretish\n", base.Add(2*time.Minute))
	if s := status("token-beta"); s != wire.StatusOK {
		t.Fatalf("a broken reload must keep the old set: %v", s)
	}
	if s := status("token-gamma"); s != wire.StatusAuthFailed {
		t.Fatalf("token from a broken file accepted: %v", s)
	}
	logged := h.logs.String()
	if !strings.Contains(logged, "reload failed") || !strings.Contains(logged, "line 2") {
		t.Errorf("broken reload not logged with its line:\n%s", logged)
	}
	for _, secret := range []string{"token-gamma", "nothex-secretish", "token-beta", "token-alpha"} {
		if strings.Contains(logged, secret) {
			t.Errorf("log contains %q:\n%s", secret, logged)
		}
	}
}

func TestMetricsScrapedOverHTTP(t *testing.T) {
	host, port := echoServer(t)
	h := newHarness(t, allowLoopback)
	metricsSrv := httptest.NewServer(promhttp.HandlerFor(h.reg, promhttp.HandlerOpts{}))
	defer metricsSrv.Close()

	reply, conn := h.handshake("nope")
	conn.Close()
	if reply.Status != wire.StatusAuthFailed {
		t.Fatal(reply.Err())
	}
	sess := h.tunnel()
	stream, r := open(t, sess, wire.KindNet, host, port, []byte("12345"))
	if r.Status != wire.StatusOK {
		t.Fatal(r.Err())
	}
	stream.Close()
	readAllTimeout(t, stream)
	open(t, sess, wire.KindNet, "10.0.0.1", 80, nil)

	want := []string{
		`tessel_proxy_tunnels_total{result="ok"} 1`,
		`tessel_proxy_tunnels_total{result="auth_failed"} 1`,
		`tessel_proxy_handshake_failures_total{stage="auth"} 1`,
		`tessel_proxy_tunnels_open 1`,
		`tessel_proxy_streams_total{status="ok"} 1`,
		`tessel_proxy_streams_total{status="denied"} 1`,
		`tessel_proxy_bytes_in_total 5`,
		`tessel_proxy_bytes_out_total 5`,
	}
	var body string
	for range 200 { // the relay counts its last bytes just after the client sees them
		resp, err := http.Get(metricsSrv.URL)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		body = string(b)
		if containsAll(body, want) {
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
	for _, w := range want {
		if !strings.Contains(body, w) {
			t.Errorf("metrics lack %s", w)
		}
	}
	t.Logf("metrics:\n%s", body)
}

// TestMetricsFollowPrometheusConventions runs promlint, the checks of Prometheus's own
// tooling (names, units, _total on counters, help text), over every collector.
func TestMetricsFollowPrometheusConventions(t *testing.T) {
	reg := prometheus.NewRegistry()
	if _, err := newMetrics(reg); err != nil {
		t.Fatal(err)
	}
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	problems, err := promlint.NewWithMetricFamilies(mfs).Lint()
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range problems {
		t.Errorf("%s: %s", p.Metric, p.Text)
	}
}

func containsAll(s string, subs []string) bool {
	for _, sub := range subs {
		if !strings.Contains(s, sub) {
			return false
		}
	}
	return true
}

func TestNewRejectsIncompleteConfig(t *testing.T) {
	cert, _, _ := testCert(t)
	auth, _ := NewStaticAuthenticator("x")
	tests := []struct {
		name string
		cfg  Config
		want string
	}{
		{"no TLS", Config{Authenticator: auth}, "TLS"},
		{"no auth", Config{TLS: &tls.Config{Certificates: []tls.Certificate{cert}}}, "Authenticator"},
		{"negative streams", Config{TLS: &tls.Config{Certificates: []tls.Certificate{cert}}, Authenticator: auth, MaxStreams: -1}, "MaxStreams"},
		{"window under yamux's minimum", Config{TLS: &tls.Config{Certificates: []tls.Certificate{cert}}, Authenticator: auth, StreamWindow: 64 << 10}, "StreamWindow"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := New(tt.cfg)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("New: %v, want an error naming %s", err, tt.want)
			}
		})
	}
}

func TestHandshakeRefusesIdentityAlreadyExpired(t *testing.T) {
	h := newHarness(t, func(c *Config) { c.Authenticator = expiringAuth{lifetime: -time.Second} })
	reply, _ := h.handshake(testToken)
	if reply.Status != wire.StatusAuthFailed {
		t.Fatalf("expired identity: status %v, want auth failed", reply.Status)
	}
}
