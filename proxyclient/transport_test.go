package proxyclient

import (
	"bufio"
	"context"
	"encoding/base64"
	"errors"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tessel/tessel-proxy/proxyconfig"
)

// over returns s's client configuration with the tunnel over WebSocket at path ("" for
// plain TLS).
func over(s *testServer, path string) proxyconfig.Config {
	cfg := s.config()
	cfg.WebSocketPath = path
	return cfg
}

func TestWebSocketTunnelToTLSListener(t *testing.T) {
	srv := newTestServer(t, testToken)
	target := newEchoTarget(t)
	d := newTestDialer(t, over(srv, "/tunnel"), testToken)
	if got := echoThrough(t, d, target.addr()); got != "echo:hello" {
		t.Fatalf("through wss: %q", got)
	}
	if got := d.Transport(); got != "wss://"+srv.addr()+"/tunnel" {
		t.Errorf("Transport() = %q", got)
	}
	// The same server still takes plain TLS tunnels.
	plain := newTestDialer(t, over(srv, ""), testToken)
	if got := echoThrough(t, plain, target.addr()); got != "echo:hello" {
		t.Fatalf("through TLS: %q", got)
	}
}

func TestWebSocketWrongPath(t *testing.T) {
	srv := newTestServer(t, testToken)
	d := newTestDialer(t, over(srv, "/nope"), testToken)
	err := d.Connect(context.Background())
	if !errors.Is(err, ErrProtocol) || !strings.Contains(err.Error(), "404") || !strings.Contains(err.Error(), "/nope") {
		t.Fatalf("wrong path: %v; want ErrProtocol naming the URL and the 404", err)
	}
}

func TestWebSocketBadToken(t *testing.T) {
	srv := newTestServer(t, testToken)
	d := newTestDialer(t, over(srv, "/tunnel"), "wrong-token")
	if err := d.Connect(context.Background()); !errors.Is(err, ErrAuthFailed) {
		t.Fatalf("bad token over wss: %v, want ErrAuthFailed", err)
	}
}

// connectProxy is an upstream HTTP proxy that answers CONNECT and relays. It is in Go,
// not tinyproxy, so that the unit tests see the exact request (credentials) and can make
// each refusal happen; e2e/awkward_test.go drives the real tinyproxy.
type connectProxy struct {
	ln       net.Listener
	user     string // "" takes anyone
	pass     string
	status   int    // when not 0, the answer to every CONNECT
	scheme   string // the Proxy-Authenticate challenge of a 407; default Basic
	mu       sync.Mutex
	requests []string // "CONNECT host:port" lines seen
	wg       sync.WaitGroup
}

func newConnectProxy(t testing.TB, user, pass string) *connectProxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &connectProxy{ln: ln, user: user, pass: pass}
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			p.wg.Add(1)
			go func() { defer p.wg.Done(); p.handle(c) }()
		}
	}()
	t.Cleanup(func() { ln.Close(); p.wg.Wait() })
	return p
}

func (p *connectProxy) url(user, pass string) *url.URL {
	u := &url.URL{Scheme: "http", Host: p.ln.Addr().String()}
	if user != "" {
		u.User = url.UserPassword(user, pass)
	}
	return u
}

func (p *connectProxy) handle(c net.Conn) {
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	br := bufio.NewReader(c)
	req, err := http.ReadRequest(br)
	if err != nil {
		return
	}
	p.mu.Lock()
	p.requests = append(p.requests, req.Method+" "+req.Host)
	p.mu.Unlock()
	if p.status != 0 {
		io.WriteString(c, "HTTP/1.1 "+strconv.Itoa(p.status)+" "+http.StatusText(p.status)+"\r\nContent-Length: 0\r\n\r\n")
		return
	}
	if p.user != "" {
		want := "Basic " + base64.StdEncoding.EncodeToString([]byte(p.user+":"+p.pass))
		if req.Header.Get("Proxy-Authorization") != want {
			scheme := p.scheme
			if scheme == "" {
				scheme = `Basic realm="corp"`
			}
			io.WriteString(c, "HTTP/1.1 407 Proxy Authentication Required\r\nProxy-Authenticate: "+scheme+"\r\nContent-Length: 0\r\n\r\n")
			return
		}
	}
	up, err := net.Dial("tcp", req.Host)
	if err != nil {
		io.WriteString(c, "HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\n\r\n")
		return
	}
	defer up.Close()
	io.WriteString(c, "HTTP/1.1 200 Connection established\r\n\r\n")
	c.SetDeadline(time.Time{})
	done := make(chan struct{})
	go func() { io.Copy(up, br); up.(*net.TCPConn).CloseWrite(); close(done) }()
	io.Copy(c, up)
	<-done
}

func (p *connectProxy) seen() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]string(nil), p.requests...)
}

func TestTunnelThroughUpstreamProxy(t *testing.T) {
	srv := newTestServer(t, testToken)
	target := newEchoTarget(t)
	for _, wsPath := range []string{"", "/tunnel"} {
		t.Run("ws="+wsPath, func(t *testing.T) {
			up := newConnectProxy(t, "alice", "s3cret")
			cfg := over(srv, wsPath)
			cfg.Via, cfg.ViaSource = up.url("alice", "s3cret"), proxyconfig.VarVia
			d := newTestDialer(t, cfg, testToken)
			if got := echoThrough(t, d, target.addr()); got != "echo:hello" {
				t.Fatalf("through the upstream proxy: %q", got)
			}
			if got, want := up.seen(), []string{"CONNECT " + srv.addr()}; strings.Join(got, ",") != strings.Join(want, ",") {
				t.Errorf("upstream saw %q, want %q", got, want)
			}
			desc := d.Transport()
			if !strings.Contains(desc, "via upstream proxy http://alice:********@"+up.ln.Addr().String()+" (PROXY_VIA)") || strings.Contains(desc, "s3cret") {
				t.Errorf("Transport() = %q", desc)
			}
		})
	}
}

func TestUpstreamProxyErrors(t *testing.T) {
	srv := newTestServer(t, testToken)
	closed, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closedURL := &url.URL{Scheme: "http", User: url.UserPassword("alice", "s3cret"), Host: closed.Addr().String()}
	closed.Close()

	needsAuth := newConnectProxy(t, "alice", "right")
	ntlm := newConnectProxy(t, "alice", "right")
	ntlm.scheme = "NTLM"
	forbidden := newConnectProxy(t, "", "")
	forbidden.status = http.StatusForbidden
	tests := []struct {
		name string
		via  *url.URL
		want error
		text []string
	}{
		{"refused", closedURL, ErrUpstreamUnreachable, []string{"connection refused", "PROXY_VIA", closed.Addr().String()}},
		{"407 without credentials", needsAuth.url("", ""), ErrUpstreamAuth, []string{"407", "wants a user and password", "PROXY_VIA=http://USER:PASSWORD@"}},
		{"407 with wrong credentials", needsAuth.url("alice", "s3cret"), ErrUpstreamAuth, []string{"407", "check the user and password in PROXY_VIA", "alice:********@"}},
		{"407 NTLM only", ntlm.url("alice", "s3cret"), ErrUpstreamAuth, []string{"asks for NTLM authentication", "only Basic"}},
		{"403", forbidden.url("", ""), ErrUpstreamRefused, []string{"403 Forbidden", "CONNECT", srv.addr()}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := over(srv, "")
			cfg.Via, cfg.ViaSource = tt.via, proxyconfig.VarVia
			d := newTestDialer(t, cfg, testToken)
			err := d.Connect(context.Background())
			if !errors.Is(err, tt.want) {
				t.Fatalf("err = %v, want %v", err, tt.want)
			}
			for _, s := range tt.text {
				if !strings.Contains(err.Error(), s) {
					t.Errorf("error %q does not say %q", err, s)
				}
			}
			if strings.Contains(err.Error(), "s3cret") {
				t.Errorf("error shows the password: %v", err)
			}
		})
	}
}

func TestUpstreamProxyTimeout(t *testing.T) {
	// An upstream proxy that accepts and never answers.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		var held []net.Conn
		for {
			c, err := ln.Accept()
			if err != nil {
				break
			}
			held = append(held, c)
		}
		for _, c := range held {
			c.Close()
		}
	}()
	defer func() { ln.Close(); <-done }()
	cfg := proxyconfig.Config{Host: "127.0.0.1", Port: 1, Idle: proxyconfig.IdleNever,
		Via: &url.URL{Scheme: "http", Host: ln.Addr().String()}, ViaSource: proxyconfig.VarHTTPSProxy}
	d := newTestDialer(t, cfg, testToken, WithHandshakeTimeout(200*time.Millisecond))
	err = d.Connect(context.Background())
	if !errors.Is(err, ErrProxyUnreachable) || !strings.Contains(err.Error(), "no answer within 200ms") || !strings.Contains(err.Error(), "via http://"+ln.Addr().String()+" (HTTPS_PROXY)") {
		t.Fatalf("err = %v", err)
	}
}
