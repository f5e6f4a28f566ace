package proxyserver

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"io"
	"log/slog"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/yamux"
	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/goleak"

	"github.com/tessel/tessel-proxy/internal/syncbuf"
	"github.com/tessel/tessel-proxy/wire"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

const testToken = "s3cret-test-token-do-not-log"

// harness is a real server on a loopback TLS listener.
type harness struct {
	t      testing.TB
	srv    *Server
	addr   string
	roots  *x509.CertPool
	logs   *syncbuf.Buffer
	reg    *prometheus.Registry
	served chan error
}

// testCert returns a certificate for 127.0.0.1 and a pool that trusts it.
func testCert(t testing.TB, hosts ...string) (tls.Certificate, *x509.CertPool, []byte) {
	t.Helper()
	if len(hosts) == 0 {
		hosts = []string{"127.0.0.1"}
	}
	certPEM, keyPEM, err := GenerateSelfSigned(hosts, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	cert, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(certPEM) {
		t.Fatal("test certificate does not parse")
	}
	return cert, pool, certPEM
}

func newHarness(t testing.TB, configure ...func(*Config)) *harness {
	t.Helper()
	cert, pool, _ := testCert(t)
	auth, err := NewStaticAuthenticator(testToken)
	if err != nil {
		t.Fatal(err)
	}
	h := &harness{t: t, roots: pool, logs: &syncbuf.Buffer{}, reg: prometheus.NewRegistry(), served: make(chan error, 1)}
	cfg := Config{
		TLS:           &tls.Config{Certificates: []tls.Certificate{cert}},
		Authenticator: auth,
		Logger:        slog.New(slog.NewJSONHandler(h.logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
		Metrics:       h.reg,
	}
	for _, c := range configure {
		c(&cfg)
	}
	h.srv, err = New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	h.addr = ln.Addr().String()
	go func() { h.served <- h.srv.Serve(ln) }()
	t.Cleanup(func() {
		h.srv.Close()
		if err := <-h.served; !errors.Is(err, ErrServerClosed) {
			t.Errorf("Serve returned %v, want ErrServerClosed", err)
		}
		if strings.Contains(h.logs.String(), testToken) {
			t.Errorf("the token appears in the server's log:\n%s", h.logs)
		}
	})
	return h
}

func allowLoopback(c *Config) {
	c.Policy = &Policy{Allow: mustPrefixes("127.0.0.0/8", "::1/128")}
}

// dialTLS opens a TLS connection to the server, as a client would.
func (h *harness) dialTLS() *tls.Conn {
	h.t.Helper()
	conn, err := tls.Dial("tcp", h.addr, &tls.Config{RootCAs: h.roots, ServerName: "127.0.0.1", MinVersion: tls.VersionTLS12})
	if err != nil {
		h.t.Fatal(err)
	}
	h.t.Cleanup(func() { conn.Close() })
	return conn
}

// handshake sends a Hello with token and returns the reply and the connection.
func (h *harness) handshake(token string) (wire.Reply, *tls.Conn) {
	h.t.Helper()
	conn := h.dialTLS()
	if err := wire.WriteHello(conn, wire.Hello{Version: wire.Version, Token: token}); err != nil {
		h.t.Fatal(err)
	}
	reply, err := wire.ReadReply(conn)
	if err != nil {
		h.t.Fatalf("read handshake reply: %v", err)
	}
	return reply, conn
}

// tunnel authenticates and starts the client side of the yamux session.
func (h *harness) tunnel() *yamux.Session {
	h.t.Helper()
	reply, conn := h.handshake(testToken)
	if reply.Status != wire.StatusOK {
		h.t.Fatalf("handshake: %v", reply.Err())
	}
	sess, err := yamux.Client(conn, wire.MuxConfig())
	if err != nil {
		h.t.Fatal(err)
	}
	h.t.Cleanup(func() { sess.Close() })
	return sess
}

// open opens a stream for req, sending payload along with the request, and reads the reply.
func open(t *testing.T, sess *yamux.Session, kind wire.Kind, host string, port uint16, payload []byte) (*yamux.Stream, wire.Reply) {
	t.Helper()
	stream, err := sess.OpenStream()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { stream.Close() })
	buf, err := wire.AppendStreamRequest(nil, wire.StreamRequest{Version: wire.Version, Kind: kind, Host: host, Port: port})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := stream.Write(append(buf, payload...)); err != nil {
		t.Fatal(err)
	}
	reply, err := wire.ReadReply(stream)
	if err != nil {
		t.Fatalf("read stream reply: %v", err)
	}
	return stream, reply
}

// echoServer accepts on loopback and echoes each connection until the client half-closes,
// then half-closes back.
func echoServer(t *testing.T) (host string, port uint16) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	t.Cleanup(func() { ln.Close(); wg.Wait() })
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer c.Close()
				io.Copy(c, c)
				c.(*net.TCPConn).CloseWrite()
				io.Copy(io.Discard, c)
			}()
		}
	}()
	ap := ln.Addr().(*net.TCPAddr).AddrPort()
	return ap.Addr().String(), ap.Port()
}

// closedPort returns a loopback port that nothing listens on.
func closedPort(t *testing.T) uint16 {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := ln.Addr().(*net.TCPAddr).AddrPort().Port()
	ln.Close()
	return port
}

// recordingDialer records what the server dials and refuses everything.
type recordingDialer struct {
	mu    sync.Mutex
	calls []string
}

func (d *recordingDialer) DialContext(_ context.Context, network, address string) (net.Conn, error) {
	d.mu.Lock()
	d.calls = append(d.calls, address)
	d.mu.Unlock()
	return nil, errors.New("recordingDialer dials nothing")
}

func (d *recordingDialer) Calls() []string {
	d.mu.Lock()
	defer d.mu.Unlock()
	return append([]string(nil), d.calls...)
}

// readAllTimeout reads r to EOF, failing the test if that takes unreasonably long (a hang,
// not a timing assertion).
func readAllTimeout(t *testing.T, r interface {
	io.Reader
	SetReadDeadline(time.Time) error
}) []byte {
	t.Helper()
	_ = r.SetReadDeadline(time.Now().Add(20 * time.Second))
	b, err := io.ReadAll(r)
	if err != nil {
		t.Fatalf("read: %v (after %q)", err, b)
	}
	return b
}
