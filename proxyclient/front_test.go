package proxyclient

import (
	"bufio"
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/tessel/tessel-proxy/proxyconfig"
	"github.com/tessel/tessel-proxy/proxyserver"
	"github.com/tessel/tessel-proxy/wire"
)

// curl runs the real curl with a clean environment (so no *_PROXY or NO_PROXY of the
// machine interferes) and returns its stdout, stderr and exit status.
func curl(t *testing.T, args ...string) (string, string, int) {
	t.Helper()
	path, err := exec.LookPath("curl")
	if err != nil {
		t.Fatal("curl not found: install the curl package (apt-get install curl)")
	}
	cmd := exec.Command(path, append([]string{"-sS", "--max-time", "20"}, args...)...)
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + t.TempDir()}
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err = cmd.Run()
	code := 0
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	return out.String(), errb.String(), code
}

// webTarget answers GET with the path and POST with the body it received.
func webTarget(t *testing.T) *httptest.Server {
	s := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/stream" {
			// No Content-Length: a chunked response.
			for i := 0; i < 3; i++ {
				fmt.Fprintf(w, "part%d ", i)
				w.(http.Flusher).Flush()
			}
			return
		}
		if r.Header.Get("Proxy-Authorization") != "" {
			http.Error(w, "Proxy-Authorization leaked to the target", 500)
			return
		}
		if r.Method == http.MethodPost {
			b, _ := io.ReadAll(r.Body)
			fmt.Fprintf(w, "posted %s", b)
			return
		}
		fmt.Fprintf(w, "got %s", r.URL.Path)
	}))
	t.Cleanup(s.Close)
	return s
}

type frontFixture struct {
	srv   *testServer
	d     *Dialer
	front *Front
}

func newFrontFixture(t *testing.T, local string, configure ...func(*proxyserver.Config)) *frontFixture {
	srv := newTestServer(t, testToken, configure...)
	cfg := srv.config()
	if local != "" {
		l, err := proxyconfig.ParseLocal(local)
		if err != nil {
			t.Fatal(err)
		}
		cfg.Local = l
	}
	d := newTestDialer(t, cfg, testToken)
	f, err := ListenFront(d, "127.0.0.1:0", nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	return &frontFixture{srv: srv, d: d, front: f}
}

func TestFrontSOCKS5(t *testing.T) {
	web := webTarget(t)
	fx := newFrontFixture(t, "none")

	out, stderr, code := curl(t, "-x", fx.front.URL("socks5h"), web.URL+"/via-socks")
	if code != 0 || out != "got /via-socks" {
		t.Fatalf("curl through SOCKS5: exit %d, %q, stderr %s", code, out, stderr)
	}
	if fx.srv.streams() != 1 {
		t.Fatalf("proxy saw %d streams, want 1", fx.srv.streams())
	}
	// --socks5-hostname sends the name unresolved (ATYP domain).
	u, _ := url.Parse(web.URL)
	named := "http://localhost:" + u.Port() + "/named"
	out, stderr, code = curl(t, "--socks5-hostname", fx.front.Addr().String(),
		"--proxy-user", fx.front.Username()+":"+fx.front.Password(), named)
	if code != 0 || out != "got /named" {
		t.Fatalf("curl --socks5-hostname: exit %d, %q, stderr %s", code, out, stderr)
	}
	host := fx.srv.lastRequest().Host
	if host != "localhost" {
		t.Fatalf("proxy was asked for %q, want the name localhost unresolved", host)
	}
}

func TestFrontHTTPForward(t *testing.T) {
	web := webTarget(t)
	fx := newFrontFixture(t, "none")
	proxy := fx.front.URL("http")

	out, stderr, code := curl(t, "-x", proxy, web.URL+"/one", web.URL+"/two")
	if code != 0 || out != "got /onegot /two" {
		t.Fatalf("curl -x: exit %d, %q, stderr %s", code, out, stderr)
	}
	out, stderr, code = curl(t, "-x", proxy, "-d", "form=data", web.URL+"/post")
	if code != 0 || out != "posted form=data" {
		t.Fatalf("POST through the front: exit %d, %q, stderr %s", code, out, stderr)
	}
	big := strings.Repeat("x", 300<<10)
	body := t.TempDir() + "/body"
	os.WriteFile(body, []byte(big), 0o600)
	out, stderr, code = curl(t, "-x", proxy, "-H", "Transfer-Encoding: chunked", "--data-binary", "@"+body, web.URL+"/post")
	if code != 0 || out != "posted "+big {
		t.Fatalf("chunked POST through the front: exit %d, %d bytes, stderr %s", code, len(out), stderr)
	}
	out, stderr, code = curl(t, "-v", "-x", proxy, "-H", "Expect: 100-continue", "--data-binary", "@"+body, web.URL+"/post")
	if code != 0 || out != "posted "+big || !strings.Contains(stderr, "< HTTP/1.1 100 Continue") {
		t.Fatalf("POST with Expect: 100-continue: exit %d, %d bytes, stderr %s", code, len(out), stderr)
	}
	out, stderr, code = curl(t, "-x", proxy, web.URL+"/stream")
	if code != 0 || out != "part0 part1 part2 " {
		t.Fatalf("chunked response through the front: exit %d, %q, stderr %s", code, out, stderr)
	}
}

func TestFrontKeepsClientConnection(t *testing.T) {
	web := webTarget(t)
	fx := newFrontFixture(t, "none")
	// Count connections the front accepts by wrapping its listener's view: curl -v says
	// whether it reused the connection for the second URL.
	_, stderr, code := curl(t, "-v", "-x", fx.front.URL("http"), web.URL+"/a", web.URL+"/b")
	if code != 0 {
		t.Fatalf("curl exit %d: %s", code, stderr)
	}
	if n := strings.Count(stderr, "Connected to"); n != 1 {
		t.Fatalf("curl connected to the front %d times for two requests, want 1 (keep-alive):\n%s", n, stderr)
	}
	if fx.srv.streams() != 2 {
		t.Fatalf("proxy saw %d streams, want one per request", fx.srv.streams())
	}
}

func TestFrontHTTPConnect(t *testing.T) {
	web := webTarget(t)
	https := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "tls through CONNECT")
	}))
	defer https.Close()
	fx := newFrontFixture(t, "none")

	out, stderr, code := curl(t, "-k", "-x", fx.front.URL("http"), https.URL)
	if code != 0 || out != "tls through CONNECT" {
		t.Fatalf("https through the HTTP front: exit %d, %q, stderr %s", code, out, stderr)
	}
	out, stderr, code = curl(t, "-p", "-x", fx.front.URL("http"), web.URL+"/tunneled")
	if code != 0 || out != "got /tunneled" {
		t.Fatalf("curl -p (CONNECT for http): exit %d, %q, stderr %s", code, out, stderr)
	}
	kind := fx.srv.lastRequest().Kind
	if kind != wire.KindNet {
		t.Fatalf("CONNECT used stream kind %v; a program's own TLS must ride kind net, end to end", kind)
	}
}

func TestFrontRefusesWrongCredentials(t *testing.T) {
	web := webTarget(t)
	fx := newFrontFixture(t, "none")
	addr := fx.front.Addr().String()
	user := fx.front.Username()

	cases := []struct {
		name string
		args []string
		want string
	}{
		{"http wrong password", []string{"-x", "http://" + user + ":wrong@" + addr, "-w", "%{http_code}", web.URL}, "407"},
		{"http no credentials", []string{"-x", "http://" + addr, "-w", "%{http_code}", web.URL}, "407"},
		{"connect wrong password", []string{"-p", "-x", "http://" + user + ":wrong@" + addr, web.URL}, ""},
		{"socks wrong password", []string{"-x", "socks5h://" + user + ":wrong@" + addr, web.URL}, ""},
		{"socks no credentials", []string{"-x", "socks5h://" + addr, web.URL}, ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			out, stderr, code := curl(t, tc.args...)
			if tc.want != "" {
				if !strings.HasSuffix(out, tc.want) {
					t.Fatalf("got %q (stderr %s), want status %s", out, stderr, tc.want)
				}
			} else if code == 0 {
				t.Fatalf("curl succeeded with wrong credentials: %q", out)
			}
		})
	}
	if n := fx.srv.streams(); n != 0 {
		t.Fatalf("proxy saw %d streams from unauthenticated clients", n)
	}
}

func TestFrontBasicAuthScheme(t *testing.T) {
	f := &Front{user: "u", pass: "p"}
	creds := base64.StdEncoding.EncodeToString([]byte("u:p"))
	cases := []struct {
		header string
		want   bool
	}{
		{"Basic " + creds, true},
		{"bAsIc " + creds, true},
		{"Basic\x00" + creds, false}, // the scheme must be followed by a space
		{"Bearer " + creds, false},
		{"Basic " + base64.StdEncoding.EncodeToString([]byte("u:q")), false},
	}
	for _, tc := range cases {
		if got := f.basicAuthOK(tc.header); got != tc.want {
			t.Errorf("basicAuthOK(%q) = %v, want %v", tc.header, got, tc.want)
		}
	}
}

func TestFrontReportsRefusals(t *testing.T) {
	web := webTarget(t)
	fx := newFrontFixture(t, "none", denyLoopback) // the server's policy refuses the target

	out, _, _ := curl(t, "-x", fx.front.URL("http"), "-w", "\n%{http_code}", web.URL)
	if !strings.HasSuffix(out, "\n502") || !strings.Contains(out, wire.ErrDenied.Error()) {
		t.Fatalf("HTTP front on a denied target: %q, want 502 naming the proxy's reason", out)
	}
	_, stderr, code := curl(t, "-x", fx.front.URL("socks5h"), web.URL)
	if code == 0 || !strings.Contains(stderr, "(2)") {
		t.Fatalf("SOCKS front on a denied target: exit %d, %s; want reply code 2 (not allowed)", code, stderr)
	}
}

func TestFrontRoutesLocalDirect(t *testing.T) {
	web := webTarget(t)
	fx := newFrontFixture(t, "127.0.0.0/8")
	out, stderr, code := curl(t, "-x", fx.front.URL("http"), web.URL+"/local")
	if code != 0 || out != "got /local" {
		t.Fatalf("exit %d, %q, %s", code, out, stderr)
	}
	out, stderr, code = curl(t, "-x", fx.front.URL("socks5h"), web.URL+"/local")
	if code != 0 || out != "got /local" {
		t.Fatalf("exit %d, %q, %s", code, out, stderr)
	}
	if n := fx.srv.streams(); n != 0 {
		t.Fatalf("PROXY_LOCAL host went through the tunnel (%d streams)", n)
	}
}

func TestFrontCloseEndsRelays(t *testing.T) {
	target := newBannerTarget(t, "hi")
	fx := newFrontFixture(t, "none")
	c, err := net.Dial("tcp", fx.front.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	fmt.Fprintf(c, "CONNECT %s HTTP/1.1\r\nHost: %[1]s\r\nProxy-Authorization: Basic %s\r\n\r\n",
		target.addr(), basic(fx.front.Username(), fx.front.Password()))
	buf := make([]byte, 64)
	n, _ := io.ReadAtLeast(c, buf, len("HTTP/1.1 200"))
	if !strings.HasPrefix(string(buf[:n]), "HTTP/1.1 200") {
		t.Fatalf("CONNECT answered %q", buf[:n])
	}
	fx.front.Close() // with the relay still open: must not hang or leak (goleak checks)
	if _, err := io.ReadAll(c); err != nil && !errors.Is(err, net.ErrClosed) {
		t.Logf("read after front close: %v", err)
	}
}

func basic(user, pass string) string {
	return base64Std(user + ":" + pass)
}

func base64Std(s string) string { return base64.StdEncoding.EncodeToString([]byte(s)) }

// stallingTarget listens on loopback; its first connection gets start and then nothing more,
// and is handed to the test on the returned channel.
func stallingTarget(t *testing.T, start string) (net.Listener, <-chan net.Conn) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	held := make(chan net.Conn, 1)
	go func() {
		c, err := ln.Accept()
		if err == nil {
			io.WriteString(c, start)
			held <- c
		}
	}()
	return ln, held
}

func TestFrontCloseWhileTargetIsSilent(t *testing.T) {
	// The target sends the start of a response and then nothing: the front's handler
	// is left waiting for the rest of the body.
	silent, accepted := stallingTarget(t, "HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\npartial")
	fx := newFrontFixture(t, "none")
	c, err := net.Dial("tcp", fx.front.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	fmt.Fprintf(c, "GET http://%s/ HTTP/1.1\r\nHost: %[1]s\r\nProxy-Authorization: Basic %s\r\n\r\n",
		silent.Addr(), basic(fx.front.Username(), fx.front.Password()))
	var got []byte
	buf := make([]byte, 256)
	for !bytes.Contains(got, []byte("partial")) {
		n, err := c.Read(buf)
		if err != nil {
			t.Fatalf("reading the start of the response: %v (got %q)", err, got)
		}
		got = append(got, buf[:n]...)
	}
	held := <-accepted
	defer held.Close()
	closed := make(chan struct{})
	go func() { fx.front.Close(); close(closed) }()
	select {
	case <-closed:
	case <-time.After(20 * time.Second):
		t.Fatal("Front.Close hung on a handler waiting for a silent target")
	}
}

func TestFrontIPv6Targets(t *testing.T) {
	ln, err := net.Listen("tcp", "[::1]:0")
	if err != nil {
		t.Fatalf("this test needs IPv6 loopback (::1): %v", err)
	}
	web := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "v6 %s", r.URL.Path)
	}))
	web.Listener = ln
	web.Start()
	defer web.Close()
	fx := newFrontFixture(t, "none")
	for _, args := range [][]string{
		{"-x", fx.front.URL("http"), web.URL + "/forward"},
		{"-p", "-x", fx.front.URL("http"), web.URL + "/connect"},
		{"-x", fx.front.URL("socks5"), web.URL + "/socks"}, // socks5: curl sends ATYP IPv6
	} {
		out, stderr, code := curl(t, args...)
		want := "v6 " + args[len(args)-1][strings.LastIndex(args[len(args)-1], "/"):]
		if code != 0 || out != want {
			t.Fatalf("curl %v: exit %d, %q, stderr %s", args, code, out, stderr)
		}
		host := fx.srv.lastRequest().Host
		if host != "::1" {
			t.Fatalf("curl %v: proxy asked for host %q, want ::1 without brackets", args, host)
		}
	}
}

func TestFrontBoundsRequestHead(t *testing.T) {
	fx := newFrontFixture(t, "none")
	c, err := net.Dial("tcp", fx.front.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	go func() {
		// An endless header line from a client that never authenticates.
		io.WriteString(c, "GET http://example.test/ HTTP/1.1\r\nX-Junk: ")
		junk := strings.Repeat("j", 64<<10)
		for i := 0; i < 64; i++ {
			if _, err := io.WriteString(c, junk); err != nil {
				return
			}
		}
	}()
	b, _ := io.ReadAll(c)
	if !strings.HasPrefix(string(b), "HTTP/1.1 431") {
		t.Fatalf("4 MiB request head answered %q, want 431", b[:min(len(b), 80)])
	}
}

// TestFrontTunnelLossResetsClient: when the tunnel dies in the middle of a transfer, the
// program must read an error, not an end of stream it could take for the whole answer.
func TestFrontTunnelLossResetsClient(t *testing.T) {
	for _, tc := range []struct {
		name    string
		request func(fx *frontFixture, target string) string
	}{
		{"CONNECT", func(fx *frontFixture, target string) string {
			return fmt.Sprintf("CONNECT %s HTTP/1.1\r\nHost: %[1]s\r\nProxy-Authorization: Basic %s\r\n\r\n",
				target, basic(fx.front.Username(), fx.front.Password()))
		}},
		{"HTTP/1.0 forward", func(fx *frontFixture, target string) string {
			return fmt.Sprintf("GET http://%s/ HTTP/1.0\r\nProxy-Authorization: Basic %s\r\n\r\n",
				target, basic(fx.front.Username(), fx.front.Password()))
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			// The target answers with a body that ends with the connection, sends part
			// of it, and waits.
			ln, held := stallingTarget(t, "HTTP/1.0 200 OK\r\n\r\npartial")
			fx := newFrontFixture(t, "none")
			c, err := net.Dial("tcp", fx.front.Addr().String())
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			io.WriteString(c, tc.request(fx, ln.Addr().String()))
			if tc.name == "CONNECT" {
				io.WriteString(c, "GET / HTTP/1.0\r\n\r\n")
			}
			var got []byte
			buf := make([]byte, 256)
			for !bytes.Contains(got, []byte("partial")) {
				n, err := c.Read(buf)
				if err != nil {
					t.Fatalf("reading the start of the response: %v (got %q)", err, got)
				}
				got = append(got, buf[:n]...)
			}
			target := <-held
			defer target.Close()
			fx.srv.killTunnels()
			for {
				_, err = c.Read(buf)
				if err != nil {
					break
				}
			}
			if errors.Is(err, io.EOF) {
				t.Fatal("the tunnel died mid-transfer and the client read a clean end of stream")
			}
		})
	}
}

// rawExchange sends req on a new connection to the front and returns all it answers.
func rawExchange(t *testing.T, fx *frontFixture, req string) string {
	t.Helper()
	c, err := net.Dial("tcp", fx.front.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(20 * time.Second))
	io.WriteString(c, req)
	b, _ := io.ReadAll(c)
	return string(b)
}

func TestFrontRefusesItself(t *testing.T) {
	fx := newFrontFixture(t, "127.0.0.0/8 localhost 0.0.0.0") // the front's own address goes direct
	auth := basic(fx.front.Username(), fx.front.Password())
	port := fx.front.Addr().Port
	for _, target := range []string{
		fmt.Sprintf("127.0.0.1:%d", port),
		fmt.Sprintf("localhost:%d", port),
		fmt.Sprintf("0.0.0.0:%d", port),
	} {
		got := rawExchange(t, fx, fmt.Sprintf("GET http://%s/ HTTP/1.1\r\nHost: %[1]s\r\nProxy-Authorization: Basic %s\r\n\r\n", target, auth))
		if !strings.HasPrefix(got, "HTTP/1.1 508") || !strings.Contains(got, "this local proxy itself") {
			t.Errorf("GET http://%s/ (the front itself) answered %q, want 508 naming the loop", target, got)
		}
		got = rawExchange(t, fx, fmt.Sprintf("CONNECT %s HTTP/1.1\r\nHost: %[1]s\r\nProxy-Authorization: Basic %s\r\n\r\n", target, auth))
		if !strings.HasPrefix(got, "HTTP/1.1 508") {
			t.Errorf("CONNECT %s (the front itself) answered %q, want 508", target, got)
		}
	}
	// SOCKS5: greeting, username/password, CONNECT 127.0.0.1:port.
	user, pass := fx.front.Username(), fx.front.Password()
	req := []byte{5, 1, 2, 1, byte(len(user))}
	req = append(req, user...)
	req = append(req, byte(len(pass)))
	req = append(req, pass...)
	req = append(req, 5, 1, 0, 1, 127, 0, 0, 1, byte(port>>8), byte(port))
	got := rawExchange(t, fx, string(req))
	if len(got) < 6 || got[5] != socksNotAllowed {
		t.Errorf("SOCKS CONNECT to the front itself answered % x, want reply code %d (not allowed)", got, socksNotAllowed)
	}
	if n := fx.srv.streams(); n != 0 {
		t.Errorf("the proxy saw %d streams", n)
	}
}

func TestFrontHTTPForwardEmptyPortMeans80(t *testing.T) {
	fx := newFrontFixture(t, "none")
	auth := basic(fx.front.Username(), fx.front.Password())
	// example.test does not resolve: the server refuses the stream after reading it.
	rawExchange(t, fx, "GET http://example.test:/ HTTP/1.1\r\nHost: example.test:\r\nProxy-Authorization: Basic "+auth+"\r\n\r\n")
	req := fx.srv.lastRequest()
	if req.Host != "example.test" || req.Port != 80 {
		t.Fatalf("http://example.test:/ asked the proxy for %s port %d, want example.test port 80", req.Host, req.Port)
	}
}

func TestFrontHTTP10KeepAlive(t *testing.T) {
	web := webTarget(t)
	fx := newFrontFixture(t, "none")
	c, err := net.Dial("tcp", fx.front.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(20 * time.Second))
	br := bufio.NewReader(c)
	for _, path := range []string{"/one", "/two"} {
		fmt.Fprintf(c, "GET %s%s HTTP/1.0\r\nConnection: keep-alive\r\nProxy-Authorization: Basic %s\r\n\r\n",
			web.URL, path, basic(fx.front.Username(), fx.front.Password()))
		resp, err := http.ReadResponse(br, &http.Request{Method: "GET", Proto: "HTTP/1.0", ProtoMajor: 1})
		if err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		b, _ := io.ReadAll(resp.Body)
		if string(b) != "got "+path || resp.Header.Get("Connection") != "keep-alive" {
			t.Fatalf("HTTP/1.0 keep-alive request for %s: %q, Connection %q, want the body and Connection: keep-alive",
				path, b, resp.Header.Get("Connection"))
		}
	}
}

func TestFrontHTTPBadPortIsBadRequest(t *testing.T) {
	fx := newFrontFixture(t, "none")
	auth := basic(fx.front.Username(), fx.front.Password())
	for _, req := range []string{
		"CONNECT example.test:0 HTTP/1.1\r\nHost: example.test:0\r\n",
		"CONNECT example.test:99999 HTTP/1.1\r\nHost: example.test:99999\r\n",
		"CONNECT :443 HTTP/1.1\r\nHost: :443\r\n",
		"GET http://example.test:99999/ HTTP/1.1\r\nHost: example.test:99999\r\n",
	} {
		got := rawExchange(t, fx, req+"Proxy-Authorization: Basic "+auth+"\r\n\r\n")
		if !strings.HasPrefix(got, "HTTP/1.1 400") || !strings.Contains(got, "1..65535") {
			t.Errorf("%q answered %q, want 400 naming the port range", strings.SplitN(req, "\r\n", 2)[0], got)
		}
	}
}

// A request with both Transfer-Encoding and Content-Length is framed by the chunks (RFC
// 9112 section 6.3), and the target sees only one framing: no smuggled second request.
func TestFrontChunkedWinsOverContentLength(t *testing.T) {
	web := webTarget(t)
	fx := newFrontFixture(t, "none")
	got := rawExchange(t, fx, "POST "+web.URL+"/post HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n"+
		"Transfer-Encoding: chunked\r\nConnection: close\r\nProxy-Authorization: Basic "+
		basic(fx.front.Username(), fx.front.Password())+"\r\n\r\n6\r\nabcdef\r\n0\r\n\r\n")
	if !strings.HasPrefix(got, "HTTP/1.1 200") || !strings.HasSuffix(got, "posted abcdef") {
		t.Fatalf("answer %q, want 200 and the whole chunked body posted", got)
	}
}

// TestDialFailureCodes: both fronts report a failed dial the same way whether the proxy
// refused the stream or a direct dial failed, through one wire status per failure.
func TestDialFailureCodes(t *testing.T) {
	f := &Front{ctx: context.Background()}
	syscallErr := func(errno syscall.Errno) error {
		return &net.OpError{Op: "dial", Net: "tcp", Err: os.NewSyscallError("connect", errno)}
	}
	refusal := func(s wire.Status) error {
		return fmt.Errorf("dial x through the proxy: %w", &wire.Error{Status: s, Message: "why"})
	}
	cases := []struct {
		name  string
		err   error
		socks byte
		http  int
	}{
		{"proxy: denied", refusal(wire.StatusDenied), socksNotAllowed, 502},
		{"proxy: refused", refusal(wire.StatusRefused), socksRefused, 502},
		{"proxy: unreachable", refusal(wire.StatusUnreachable), socksHostUnreach, 502},
		{"proxy: no such host", refusal(wire.StatusDNSFailure), socksHostUnreach, 502},
		{"proxy: timeout", refusal(wire.StatusTimeout), socksTTLExpired, 504},
		{"proxy: limit", refusal(wire.StatusLimit), socksGeneralFailure, 502},
		{"direct: refused", syscallErr(syscall.ECONNREFUSED), socksRefused, 502},
		{"direct: network unreachable", syscallErr(syscall.ENETUNREACH), socksNetUnreachable, 502},
		{"direct: host unreachable", syscallErr(syscall.EHOSTUNREACH), socksHostUnreach, 502},
		{"direct: no such host", &net.OpError{Op: "dial", Err: &net.DNSError{Err: "no such host", IsNotFound: true}}, socksHostUnreach, 502},
		{"direct: timeout", syscallErr(syscall.ETIMEDOUT), socksTTLExpired, 504},
		{"the front itself", fmt.Errorf("dial x: %w", errLoop), socksNotAllowed, 508},
		{"tunnel lost", fmt.Errorf("%w: EOF", ErrTunnelLost), socksGeneralFailure, 502},
		{"proxy unreachable", fmt.Errorf("%w 127.0.0.1:1: connection refused", ErrProxyUnreachable), socksGeneralFailure, 502},
	}
	for _, tc := range cases {
		status := f.dialStatus(tc.err)
		if got := socksCode(tc.err, status); got != tc.socks {
			t.Errorf("%s: SOCKS reply code %d, want %d", tc.name, got, tc.socks)
		}
		if got := httpDialCode(tc.err, status); got != tc.http {
			t.Errorf("%s: HTTP status %d, want %d", tc.name, got, tc.http)
		}
	}
}

func TestFrontReportsRefusedTargetsAlikeDirectAndThroughTheProxy(t *testing.T) {
	closed := func() string {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer ln.Close()
		return "http://" + ln.Addr().String() + "/"
	}()
	for _, local := range []string{"none", "127.0.0.0/8"} {
		fx := newFrontFixture(t, local)
		out, _, _ := curl(t, "-x", fx.front.URL("http"), "-w", "\n%{http_code}", closed)
		if !strings.HasSuffix(out, "\n502") || !strings.Contains(out, "refused") {
			t.Errorf("PROXY_LOCAL=%s: HTTP front on a closed port: %q, want 502 saying refused", local, out)
		}
		_, stderr, code := curl(t, "-x", fx.front.URL("socks5h"), closed)
		if code == 0 || !strings.Contains(stderr, "(5)") {
			t.Errorf("PROXY_LOCAL=%s: SOCKS front on a closed port: exit %d, %s; want reply code 5 (refused)", local, code, stderr)
		}
	}
}
