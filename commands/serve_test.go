package commands

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/hashicorp/yamux"

	"github.com/tessel/tessel-proxy/internal/syncbuf"
	"github.com/tessel/tessel-proxy/wire"
)

func serveEnv(env map[string]string) func(string) (string, bool) {
	return func(k string) (string, bool) { v, ok := env[k]; return v, ok }
}

// TestServeDevPrintsShellLinesAClientCanUse runs `serve --dev`, reads the lines it prints
// the way a script would, and opens a tunnel and a stream to a loopback echo server with
// exactly those values.
func TestServeDevPrintsShellLinesAClientCanUse(t *testing.T) {
	state := t.TempDir()
	outR, outW := io.Pipe()
	errBuf := &syncbuf.Buffer{}
	cmdIO := IO{In: strings.NewReader(""), Out: outW, Err: errBuf,
		LookupEnv: serveEnv(map[string]string{"XDG_STATE_HOME": state, "HOME": "/nonexistent"})}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	ran := make(chan error, 1)
	go func() {
		ran <- NewApp(cmdIO).RunContext(ctx, []string{"tessel-proxy", "serve", "--dev", "--metrics-listen", "127.0.0.1:0"})
		outW.Close()
	}()

	vars := serveReadDevLines(t, outR, errBuf.String)
	if want := filepath.Join(state, "tessel-proxy", "dev", "cert.pem"); vars["PROXY_CERT"] != want {
		t.Errorf("PROXY_CERT %s, want %s", vars["PROXY_CERT"], want)
	}
	if fi, err := os.Stat(filepath.Join(state, "tessel-proxy", "dev", "key.pem")); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("dev key: %v, mode %v; want 0600", err, fi.Mode())
	}
	sess, stream := serveDevStream(t, vars)
	io.WriteString(stream, "ping")
	stream.Close()
	_ = stream.SetReadDeadline(time.Now().Add(20 * time.Second))
	if got, err := io.ReadAll(stream); err != nil || string(got) != "ping" {
		t.Fatalf("echo: %q, %v", got, err)
	}
	sess.Close()

	// --metrics-listen serves the server's metrics (and the Go runtime's) to Prometheus.
	murl := regexp.MustCompile(`url=(http://\S+/metrics)`).FindStringSubmatch(errBuf.String())
	if murl == nil {
		t.Fatalf("metrics URL not logged:\n%s", errBuf)
	}
	resp, err := http.Get(murl[1])
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, want := range []string{`tessel_proxy_streams_total{status="ok"} 1`, `tessel_proxy_tunnels_total{result="ok"} 1`, "go_goroutines"} {
		if !strings.Contains(string(body), want) {
			t.Errorf("metrics lack %s", want)
		}
	}

	cancel()
	select {
	case err := <-ran:
		if err != nil {
			t.Fatalf("serve --dev after cancel: %v", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("serve --dev did not stop")
	}
	if strings.Contains(errBuf.String(), vars["PROXY_TOKEN"]) {
		t.Errorf("the token appears in the log:\n%s", errBuf)
	}
}

// serveReadDevLines reads what `serve --dev` prints: a comment, then five export lines.
func serveReadDevLines(t *testing.T, out io.Reader, stderr func() string) map[string]string {
	t.Helper()
	lines := bufio.NewScanner(out)
	if !lines.Scan() || !strings.HasPrefix(lines.Text(), "# ") {
		t.Fatalf("first line %q, want a # comment; stderr:\n%s", lines.Text(), stderr())
	}
	export := regexp.MustCompile(`^export (PROXY_[A-Z]+)='([^']*)'$`)
	vars := map[string]string{}
	var order []string
	for len(order) < 5 && lines.Scan() {
		m := export.FindStringSubmatch(lines.Text())
		if m == nil {
			t.Fatalf("line %q is not export NAME='value'", lines.Text())
		}
		vars[m[1]] = m[2]
		order = append(order, m[1])
	}
	if got := strings.Join(order, " "); got != "PROXY_HOST PROXY_PORT PROXY_CERT PROXY_TOKEN PROXY_LOCAL" {
		t.Fatalf("variables %s; stderr:\n%s", got, stderr())
	}
	if vars["PROXY_HOST"] != "127.0.0.1" || vars["PROXY_LOCAL"] != "none" || len(vars["PROXY_TOKEN"]) < 32 {
		t.Fatalf("values %v", vars)
	}
	return vars
}

// serveDevStream authenticates to a dev server with exactly the printed values and opens a
// stream to a loopback echo server through it.
func serveDevStream(t *testing.T, vars map[string]string) (*yamux.Session, *yamux.Stream) {
	t.Helper()
	pemBytes, err := os.ReadFile(vars["PROXY_CERT"])
	if err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM(pemBytes)
	conn, err := tls.Dial("tcp", net.JoinHostPort(vars["PROXY_HOST"], vars["PROXY_PORT"]),
		&tls.Config{RootCAs: roots, ServerName: vars["PROXY_HOST"]})
	if err != nil {
		t.Fatalf("TLS to the dev server with PROXY_CERT: %v", err)
	}
	t.Cleanup(func() { conn.Close() })
	if err := wire.WriteHello(conn, wire.Hello{Version: wire.Version, Token: vars["PROXY_TOKEN"]}); err != nil {
		t.Fatal(err)
	}
	if reply, err := wire.ReadReply(conn); err != nil || reply.Status != wire.StatusOK {
		t.Fatalf("handshake with PROXY_TOKEN: %v %v", reply.Err(), err)
	}
	sess, err := yamux.Client(conn, wire.MuxConfig())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sess.Close() })

	echo, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	t.Cleanup(func() { echo.Close(); <-done })
	go func() {
		defer close(done)
		c, err := echo.Accept()
		if err != nil {
			return
		}
		io.Copy(c, c)
		c.Close()
	}()
	stream, err := sess.OpenStream()
	if err != nil {
		t.Fatal(err)
	}
	port := uint16(echo.Addr().(*net.TCPAddr).Port)
	if err := wire.WriteStreamRequest(stream, wire.StreamRequest{Version: wire.Version, Kind: wire.KindNet, Host: "127.0.0.1", Port: port}); err != nil {
		t.Fatal(err)
	}
	if reply, err := wire.ReadReply(stream); err != nil || reply.Status != wire.StatusOK {
		t.Fatalf("loopback target through the dev server: %v %v", reply.Err(), err)
	}
	return sess, stream
}

// TestServeSIGTERMDrainsThenExits signals a real serve process while a stream is open: the
// stream keeps working, the process exits 0 once it ends.
func TestServeSIGTERMDrainsThenExits(t *testing.T) {
	cmd := exec.Command(os.Args[0])
	cmd.Env = append(os.Environ(), mainArgsVar+`=["serve", "--dev", "--shutdown-timeout", "60s"]`,
		"XDG_STATE_HOME="+t.TempDir())
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	stderr := &syncbuf.Buffer{}
	cmd.Stderr = stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	linesRead := make(chan struct{})
	exited := make(chan error, 1)
	var waited sync.WaitGroup
	waited.Add(1)
	defer func() {
		// Kill is a no-op error once the process has been reaped.
		cmd.Process.Kill()
		select {
		case <-linesRead:
		default:
			close(linesRead)
		}
		waited.Wait()
	}()
	// Until the lines are read, only serveReadDevLines reads stdout; then the rest of it
	// drains here and Wait reaps the process.
	lines := bufio.NewReader(stdout)
	go func() {
		defer waited.Done()
		<-linesRead
		io.Copy(io.Discard, lines)
		exited <- cmd.Wait()
	}()
	vars := serveReadDevLines(t, lines, stderr.String)
	close(linesRead)
	_, stream := serveDevStream(t, vars)
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	for i := 0; !strings.Contains(stderr.String(), "shutting down"); i++ {
		if i > 4000 {
			t.Fatalf("no shutdown logged after SIGTERM:\n%s", stderr)
		}
		time.Sleep(5 * time.Millisecond)
	}
	// Draining: the open stream still relays.
	if _, err := io.WriteString(stream, "during drain"); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, len("during drain"))
	_ = stream.SetReadDeadline(time.Now().Add(20 * time.Second))
	if _, err := io.ReadFull(stream, buf); err != nil {
		t.Fatalf("stream during drain: %v\n%s", err, stderr)
	}
	select {
	case err := <-exited:
		t.Fatalf("serve exited (%v) with a stream open", err)
	default:
	}
	stream.Close()
	select {
	case err := <-exited:
		if err != nil {
			t.Fatalf("serve after SIGTERM: %v\n%s", err, stderr)
		}
	case <-time.After(30 * time.Second):
		t.Fatalf("serve still running after its last stream ended:\n%s", stderr)
	}
	if !strings.Contains(stderr.String(), "signal=terminated") {
		t.Errorf("log does not name the signal:\n%s", stderr)
	}
}

func TestServeUsageErrors(t *testing.T) {
	dir := t.TempDir()
	tests := []struct {
		name string
		args []string
		env  map[string]string
		want string
	}{
		{"no certificate", []string{"serve", "--listen", "127.0.0.1:0"}, map[string]string{"AUTH_HARDCODED": "t"}, "--cert FILE --key FILE"},
		{"no auth", []string{"serve", "--cert", "c", "--key", "k"}, nil, "AUTH_HARDCODED"},
		{"two auth methods", []string{"serve", "--cert", "c", "--key", "k", "--auth-tokens-file", "f"}, map[string]string{"AUTH_HARDCODED": "t"}, "choose one"},
		{"bad allow", []string{"serve", "--dev", "--allow", "10.0.0.0/33"}, nil, `--allow "10.0.0.0/33"`},
		{"bad log format", []string{"serve", "--dev", "--log-format", "xml"}, nil, "text or json"},
		{"oidc half", []string{"serve", "--cert", "c", "--key", "k", "--oidc-issuer", "https://x"}, nil, "--oidc-audience"},
		{"cert without key", []string{"serve", "--cert", "c"}, nil, "--cert and --key"},
		{"listen without port", []string{"serve", "--dev", "--listen", "localhost"}, nil, `--listen "localhost"`},
		{"listen port out of range", []string{"serve", "--dev", "--listen", "127.0.0.1:99999"}, nil, `--listen "127.0.0.1:99999"`},
		{"metrics listen without port", []string{"serve", "--dev", "--metrics-listen", "9090x"}, nil, `--metrics-listen "9090x"`},
		{"zero handshakes", []string{"serve", "--dev", "--max-handshakes", "0"}, nil, "--max-handshakes 0"},
		{"ws-listen on every address", []string{"serve", "--dev", "--ws-listen", ":8080"}, nil, "not a loopback address"},
		{"ws-listen on a LAN address", []string{"serve", "--dev", "--ws-listen", "192.168.1.5:8080"}, nil, "--ws-listen-insecure"},
		{"ws-path without slash", []string{"serve", "--dev", "--ws-path", "tunnel"}, nil, `--ws-path "tunnel"`},
		{"ws-trust-proxy without ws-listen", []string{"serve", "--dev", "--ws-trust-proxy", "10.0.0.1"}, nil, "go with --ws-listen"},
		{"bad ws-trust-proxy", []string{"serve", "--dev", "--ws-listen", "127.0.0.1:0", "--ws-trust-proxy", "x"}, nil, `--ws-trust-proxy "x"`},
		{"hostname without self-signed", []string{"serve", "--cert", "c", "--key", "k", "--hostname", "proxy.example.net"}, map[string]string{"AUTH_HARDCODED": "t"}, "--hostname"},
		{"self-signed without files", []string{"serve", "--self-signed"}, map[string]string{"AUTH_HARDCODED": "t"}, "--self-signed needs --cert"},
		{"missing cert files", []string{"serve", "--listen", "127.0.0.1:0", "--cert", filepath.Join(dir, "c.pem"), "--key", filepath.Join(dir, "k.pem")}, map[string]string{"AUTH_HARDCODED": "t"}, "c.pem"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var out, errOut bytes.Buffer
			env := map[string]string{"HOME": dir}
			for k, v := range tt.env {
				env[k] = v
			}
			code := Main(IO{In: strings.NewReader(""), Out: &out, Err: &errOut, LookupEnv: serveEnv(env)},
				append([]string{"tessel-proxy"}, tt.args...))
			if code != ExitUsage {
				t.Fatalf("exit %d, want %d; stderr:\n%s", code, ExitUsage, errOut.String())
			}
			if !strings.Contains(errOut.String(), tt.want) {
				t.Errorf("stderr %q does not mention %q", errOut.String(), tt.want)
			}
			if strings.Contains(errOut.String(), "AUTH_HARDCODED=t") || strings.Contains(out.String(), "'t'") {
				t.Errorf("token echoed: %q %q", out.String(), errOut.String())
			}
		})
	}
}

func TestServeSelfSignedPrintsPathAndFingerprint(t *testing.T) {
	dir := t.TempDir()
	cert, key := filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	var out syncbuf.Buffer
	errBuf := &syncbuf.Buffer{}
	ctx, cancel := context.WithCancel(context.Background())
	ran := make(chan error, 1)
	go func() {
		ran <- NewApp(IO{In: strings.NewReader(""), Out: &out, Err: errBuf,
			LookupEnv: serveEnv(map[string]string{"AUTH_HARDCODED": "secret-token-value"})}).RunContext(ctx,
			[]string{"tessel-proxy", "serve", "--listen", "127.0.0.1:0", "--self-signed", "--cert", cert, "--key", key, "--hostname", "proxy.example.net"})
	}()
	for i := 0; !strings.Contains(errBuf.String(), "listening"); i++ {
		if i > 2000 {
			cancel()
			t.Fatalf("not listening; stderr:\n%s", errBuf)
		}
		time.Sleep(5 * time.Millisecond)
	}
	cancel()
	if err := <-ran; err != nil {
		t.Fatal(err)
	}
	fp := regexp.MustCompile(`SHA-256 fingerprint ([0-9A-F]{2}(:[0-9A-F]{2}){31})`).FindStringSubmatch(out.String())
	if fp == nil || !strings.Contains(out.String(), cert) {
		t.Fatalf("stdout lacks the path and fingerprint:\n%s", out.String())
	}
	data, _ := os.ReadFile(cert)
	roots := x509.NewCertPool()
	if !roots.AppendCertsFromPEM(data) {
		t.Fatal("generated cert does not parse")
	}
	block := serveLeaf(t, data)
	if err := block.VerifyHostname("proxy.example.net"); err != nil {
		t.Errorf("--hostname not in the certificate: %v", err)
	}
	if err := block.VerifyHostname("127.0.0.1"); err != nil {
		t.Errorf("listen address not in the certificate: %v", err)
	}
	if strings.Contains(out.String()+errBuf.String(), "secret-token-value") {
		t.Error("token printed")
	}
}

func serveLeaf(t *testing.T, data []byte) *x509.Certificate {
	t.Helper()
	block, _ := pem.Decode(data)
	if block == nil {
		t.Fatal("no PEM block")
	}
	cert, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	return cert
}
