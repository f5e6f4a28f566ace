//go:build linux

package e2e

import (
	"crypto/sha256"
	"encoding/pem"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// The body every target in these tests answers with, so that a test can tell a real answer
// from an error page.
const greeting = "hello through the tunnel\n"

func greetingServer(t *testing.T, tlsServer bool) *httptest.Server {
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, greeting) })
	var srv *httptest.Server
	if tlsServer {
		srv = httptest.NewTLSServer(h)
	} else {
		srv = httptest.NewServer(h)
	}
	t.Cleanup(srv.Close)
	return srv
}

// targetPort is the port of an httptest server, as the serve log names the target host:port.
func targetPort(srv *httptest.Server) string {
	_, port, _ := net.SplitHostPort(srv.Listener.Addr().String())
	return port
}

func TestCurlOverHTTPThroughTunnel(t *testing.T) {
	needTools(t, "curl")
	srv := startDevServer(t)
	target := greetingServer(t, false)

	r := runTool(t, srv.clientEnv(t), "run", "--", "curl", "-sS", "--fail", target.URL+"/hello")
	if r.code != 0 || r.stdout != greeting {
		t.Fatalf("curl through run: exit %d, stdout %q, stderr:\n%s", r.code, r.stdout, r.stderr)
	}
	// The proxy server, not the front, made the connection to the target.
	waitFor(t, func() bool { return strings.Contains(srv.stderr.String(), ":"+targetPort(target)) },
		"serve's log names the target port %s; log:\n%s", targetPort(target), srv.stderr)
}

func TestCurlOverHTTPSEndToEnd(t *testing.T) {
	needTools(t, "curl")
	srv := startDevServer(t)
	target := greetingServer(t, true)
	caFile := filepath.Join(t.TempDir(), "target.pem")
	pemBytes := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: target.Certificate().Raw})
	if err := os.WriteFile(caFile, pemBytes, 0o644); err != nil {
		t.Fatal(err)
	}
	// curl's own TLS rides the tunnel as a byte stream (CONNECT through the front): the proxy
	// never sees plaintext, and curl verifies the target's certificate itself.
	r := runTool(t, srv.clientEnv(t), "run", "--", "curl", "-sS", "--fail", "--cacert", caFile, target.URL+"/")
	if r.code != 0 || r.stdout != greeting {
		t.Fatalf("https through run: exit %d, stdout %q, stderr:\n%s", r.code, r.stdout, r.stderr)
	}
	waitFor(t, func() bool { return strings.Contains(srv.stderr.String(), ":"+targetPort(target)) },
		"serve's log names the target port %s; log:\n%s", targetPort(target), srv.stderr)
}

func TestPythonThroughTunnel(t *testing.T) {
	needTools(t, "python3")
	srv := startDevServer(t)
	target := greetingServer(t, false)
	script := "import sys, urllib.request; sys.stdout.write(urllib.request.urlopen(sys.argv[1]).read().decode())"
	r := runTool(t, srv.clientEnv(t), "run", "--", "python3", "-c", script, target.URL+"/py")
	if r.code != 0 || r.stdout != greeting {
		t.Fatalf("python3 through run: exit %d, stdout %q, stderr:\n%s", r.code, r.stdout, r.stderr)
	}
	waitFor(t, func() bool { return strings.Contains(srv.stderr.String(), ":"+targetPort(target)) },
		"serve's log names the target port; log:\n%s", srv.stderr)
}

func TestRequestFailsOnceServerIsGone(t *testing.T) {
	needTools(t, "curl")
	srv := startDevServer(t)
	target := greetingServer(t, false)
	env := srv.clientEnv(t)
	if r := runTool(t, env, "run", "--", "curl", "-sS", "--fail", target.URL); r.code != 0 || r.stdout != greeting {
		t.Fatalf("before stopping the server: exit %d, stdout %q, stderr:\n%s", r.code, r.stdout, r.stderr)
	}
	srv.stop(t)
	r := runTool(t, env, "run", "--", "curl", "-sS", "--fail", target.URL)
	if r.code == 0 || strings.Contains(r.stdout, greeting) {
		t.Fatalf("with the proxy gone the request still succeeded: exit %d, stdout %q", r.code, r.stdout)
	}
	if r.code != 125 || !strings.Contains(r.stderr, srv.env["PROXY_PORT"]) {
		t.Errorf("want exit 125 and a message naming the proxy address, got %d:\n%s", r.code, r.stderr)
	}
}

// TestLargeTransferByteExact moves 100 MB through run+curl and compares digests.
func TestLargeTransferByteExact(t *testing.T) {
	needTools(t, "curl")
	const size = 100 << 20
	srv := startDevServer(t)
	seed := rand.Uint64()
	target := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Length", strconv.Itoa(size))
		io.Copy(w, io.LimitReader(newPattern(seed), size))
	}))
	t.Cleanup(target.Close)
	want := sha256.New()
	io.Copy(want, io.LimitReader(newPattern(seed), size))

	out := filepath.Join(t.TempDir(), "download")
	start := time.Now()
	r := runTool(t, srv.clientEnv(t), "run", "--", "curl", "-sS", "--fail", "-o", out, target.URL+"/big")
	elapsed := time.Since(start)
	if r.code != 0 {
		t.Fatalf("download: exit %d, stderr:\n%s", r.code, r.stderr)
	}
	f, err := os.Open(out)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	got := sha256.New()
	n, _ := io.Copy(got, f)
	if n != size || string(got.Sum(nil)) != string(want.Sum(nil)) {
		t.Fatalf("downloaded %d bytes, digest %x; want %d bytes, digest %x", n, got.Sum(nil), size, want.Sum(nil))
	}
	t.Logf("100 MiB through run+curl in %v (%.0f MB/s)", elapsed.Round(time.Millisecond),
		float64(size)/elapsed.Seconds()/1e6)
}

// pattern is a cheap deterministic byte stream (xorshift), so that sender and checker agree
// without holding 100 MB in memory.
type pattern struct{ x uint64 }

func newPattern(seed uint64) *pattern { return &pattern{x: seed | 1} }

func (p *pattern) Read(b []byte) (int, error) {
	for i := 0; i+8 <= len(b); i += 8 {
		p.x ^= p.x << 13
		p.x ^= p.x >> 7
		p.x ^= p.x << 17
		for j := 0; j < 8; j++ {
			b[i+j] = byte(p.x >> (8 * j))
		}
	}
	return len(b) &^ 7, nil
}

func waitFor(t *testing.T, cond func() bool, format string, args ...any) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf(format, args...)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
