package proxyserver

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/hashicorp/yamux"

	"github.com/tessel/tessel-proxy/internal/wsconn"
	"github.com/tessel/tessel-proxy/wire"
)

func TestOriginOfRequest(t *testing.T) {
	loopback := DefaultTrustedProxies()
	tests := []struct {
		name    string
		peer    string
		xff     []string
		trusted []netip.Prefix
		want    string // Addr
		remote  string
	}{
		{"no header", "127.0.0.1:5000", nil, loopback, "127.0.0.1", "127.0.0.1:5000"},
		{"trusted proxy", "127.0.0.1:5000", []string{"203.0.113.7"}, loopback, "203.0.113.7", "203.0.113.7 via 127.0.0.1:5000"},
		{"last entry is the proxy's", "127.0.0.1:5000", []string{"198.51.100.1, 203.0.113.7"}, loopback, "203.0.113.7", "203.0.113.7 via 127.0.0.1:5000"},
		{"last header is the proxy's", "[::1]:5000", []string{"198.51.100.1", "2001:db8::7"}, loopback, "2001:db8::7", "2001:db8::7 via [::1]:5000"},
		{"untrusted peer", "192.0.2.9:5000", []string{"203.0.113.7"}, loopback, "192.0.2.9", "192.0.2.9:5000"},
		{"trusted by flag", "10.1.2.3:5000", []string{"203.0.113.7"}, []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}, "203.0.113.7", "203.0.113.7 via 10.1.2.3:5000"},
		{"garbage header", "127.0.0.1:5000", []string{"not-an-ip"}, loopback, "127.0.0.1", "127.0.0.1:5000"},
		{"address with port", "127.0.0.1:5000", []string{"203.0.113.7:4444"}, loopback, "203.0.113.7", "203.0.113.7 via 127.0.0.1:5000"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := &http.Request{RemoteAddr: tt.peer, Header: http.Header{}}
			for _, v := range tt.xff {
				r.Header.Add("X-Forwarded-For", v)
			}
			got := originOfRequest(r, tt.trusted)
			if got.Addr.String() != tt.want || got.Remote != tt.remote {
				t.Errorf("got %s %q, want %s %q", got.Addr, got.Remote, tt.want, tt.remote)
			}
		})
	}
}

// wsTunnel opens a tunnel over WebSocket to url (ws:// or wss://, with client as the HTTP
// client), authenticates, and returns the yamux session.
func wsTunnel(t *testing.T, url string, client *http.Client, header http.Header) (*yamux.Session, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	ws, _, err := websocket.Dial(ctx, url, &websocket.DialOptions{HTTPClient: client, HTTPHeader: header})
	if err != nil {
		return nil, err
	}
	conn := wsconn.New(ws, nil, nil)
	t.Cleanup(func() { conn.Close() })
	if err := wire.WriteHello(conn, wire.Hello{Version: wire.Version, Token: testToken}); err != nil {
		return nil, err
	}
	reply, err := wire.ReadReply(conn)
	if err != nil {
		return nil, err
	}
	if err := reply.Err(); err != nil {
		return nil, err
	}
	sess, err := yamux.Client(conn, wire.MuxConfig())
	if err != nil {
		return nil, err
	}
	t.Cleanup(func() { sess.Close() })
	return sess, nil
}

// echoOver opens a stream to a loopback echo server on sess and checks that bytes come
// back.
func echoOver(t *testing.T, sess *yamux.Session) {
	t.Helper()
	host, port := echoServer(t)
	st, reply := open(t, sess, wire.KindNet, host, port, []byte("ping"))
	if reply.Status != wire.StatusOK {
		t.Fatalf("stream reply %v", reply.Err())
	}
	st.Close()
	if got := readAllTimeout(t, st); string(got) != "ping" {
		t.Fatalf("echo: %q", got)
	}
}

func TestWebSocketListenerBehindReverseProxy(t *testing.T) {
	h := newHarness(t, allowLoopback)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	served := make(chan error, 1)
	go func() { served <- h.srv.ServeWebSocket(ln, nil) }()

	// A reverse proxy on loopback says who the client is: the log believes it.
	sess, err := wsTunnel(t, "ws://"+ln.Addr().String()+"/tunnel", nil, http.Header{"X-Forwarded-For": {"198.51.100.1, 203.0.113.7"}})
	if err != nil {
		t.Fatal(err)
	}
	echoOver(t, sess)
	if logs := h.logs.String(); !strings.Contains(logs, `"remote":"203.0.113.7 via 127.0.0.1:`) {
		t.Errorf("the log does not name the forwarded client:\n%s", logs)
	}

	// A wrong path is a 404 and no tunnel.
	if _, err := wsTunnel(t, "ws://"+ln.Addr().String()+"/other", nil, nil); err == nil || !strings.Contains(err.Error(), "404") {
		t.Errorf("wrong path: %v, want a 404", err)
	}
	h.srv.Close()
	if err := <-served; !errors.Is(err, ErrServerClosed) {
		t.Errorf("ServeWebSocket returned %v, want ErrServerClosed", err)
	}
}

func TestWebSocketListenerIgnoresUntrustedForwardedFor(t *testing.T) {
	h := newHarness(t, allowLoopback)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go h.srv.ServeWebSocket(ln, []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")})
	sess, err := wsTunnel(t, "ws://"+ln.Addr().String()+"/tunnel", nil, http.Header{"X-Forwarded-For": {"203.0.113.7"}})
	if err != nil {
		t.Fatal(err)
	}
	echoOver(t, sess)
	if logs := h.logs.String(); strings.Contains(logs, "203.0.113.7") || !strings.Contains(logs, `"remote":"127.0.0.1:`) {
		t.Errorf("a peer that is not a trusted proxy got its X-Forwarded-For believed:\n%s", logs)
	}
}

func TestTLSListenerAnswersHTTP(t *testing.T) {
	h := newHarness(t, allowLoopback)

	// A browser or curl on the TLS listener gets an HTTP answer, and the connection ends.
	conn := h.dialTLS()
	io.WriteString(conn, "GET / HTTP/1.1\r\nHost: x\r\n\r\n")
	conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNotFound {
		t.Errorf("GET / on the TLS listener: %s, want 404", resp.Status)
	}

	// wss:// to the same listener is a tunnel; its handshake slot is given back once upgraded.
	client := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: h.roots, ServerName: "127.0.0.1", MinVersion: tls.VersionTLS12}}}
	sess, err := wsTunnel(t, "wss://"+h.addr+"/tunnel", client, nil)
	if err != nil {
		t.Fatal(err)
	}
	echoOver(t, sess)
	for deadline := time.Now().Add(10 * time.Second); h.srv.admission.inProgress() != 0; time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("%d handshakes still counted after the upgrade", h.srv.admission.inProgress())
		}
	}
}

// Behind a trusted reverse proxy, failed authentications count against the client the proxy
// names, not against the proxy (which would lock every client out together).
func TestWebSocketThrottleKeyedByForwardedClient(t *testing.T) {
	h := newHarness(t, allowLoopback)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go h.srv.ServeWebSocket(ln, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	ws, _, err := websocket.Dial(ctx, "ws://"+ln.Addr().String()+"/tunnel", &websocket.DialOptions{HTTPHeader: http.Header{"X-Forwarded-For": {"203.0.113.7"}}})
	if err != nil {
		t.Fatal(err)
	}
	conn := wsconn.New(ws, nil, nil)
	defer conn.Close()
	if err := wire.WriteHello(conn, wire.Hello{Version: wire.Version, Token: "wrong-token"}); err != nil {
		t.Fatal(err)
	}
	if reply, err := wire.ReadReply(conn); err != nil || reply.Status != wire.StatusAuthFailed {
		t.Fatalf("wrong token: %v %v", reply, err)
	}
	h.srv.throttle.mu.Lock()
	defer h.srv.throttle.mu.Unlock()
	if _, ok := h.srv.throttle.sources[netip.MustParsePrefix("203.0.113.7/32")]; !ok || len(h.srv.throttle.sources) != 1 {
		t.Errorf("the failure counts against %v, want only 203.0.113.7/32", h.srv.throttle.sources)
	}
}
