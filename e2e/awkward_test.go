//go:build linux

package e2e

import (
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/tessel/tessel-proxy/internal/syncbuf"
	"github.com/tessel/tessel-proxy/proxyserver"
)

// Awkward networks: the tunnel through a real upstream HTTP proxy (tinyproxy) and through a
// real TLS-terminating reverse proxy (nginx) that passes only HTTP and WebSocket.

// freePort returns a loopback TCP port that was free a moment ago.
func freePort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// waitForTCP waits until addr accepts connections.
func waitForTCP(t *testing.T, addr string, log fmt.Stringer) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		if c, err := net.DialTimeout("tcp", addr, time.Second); err == nil {
			c.Close()
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("nothing listens on %s after 20s; its output:\n%s", addr, log)
}

// tinyproxy is a running tinyproxy, the upstream HTTP proxy of a corporate network.
type tinyproxy struct {
	addr    string // host:port
	logFile string
	cmd     *exec.Cmd
	done    chan struct{}
}

// startTinyproxy starts tinyproxy on listenIP (a free port), requiring user:pass when user
// is not empty. It is stopped when the test ends.
func startTinyproxy(t *testing.T, listenIP, user, pass string) *tinyproxy {
	t.Helper()
	needTools(t, "tinyproxy")
	dir := t.TempDir()
	port := freePort(t)
	p := &tinyproxy{addr: net.JoinHostPort(listenIP, itoa(port)), logFile: filepath.Join(dir, "tinyproxy.log"), done: make(chan struct{})}
	conf := fmt.Sprintf("Port %d\nListen %s\nTimeout 60\nLogFile %q\nLogLevel Info\nMaxClients 64\n", port, listenIP, p.logFile)
	if user != "" {
		conf += fmt.Sprintf("BasicAuth %s %s\n", user, pass)
	}
	confFile := filepath.Join(dir, "tinyproxy.conf")
	if err := writeFile(confFile, conf); err != nil {
		t.Fatal(err)
	}
	out := &syncbuf.Buffer{}
	p.cmd = exec.Command("tinyproxy", "-d", "-c", confFile)
	p.cmd.Stdout, p.cmd.Stderr = out, out
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { p.cmd.Wait(); close(p.done) }()
	t.Cleanup(p.stop)
	waitForTCP(t, p.addr, out)
	return p
}

func (p *tinyproxy) stop() {
	select {
	case <-p.done:
		return
	default:
	}
	p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(10 * time.Second):
		p.cmd.Process.Kill()
		<-p.done
	}
}

func (p *tinyproxy) log(t *testing.T) string {
	b, _ := os.ReadFile(p.logFile)
	return string(b)
}

// oneLine checks that a failed run exited 125 with a single line on stderr that says each
// of want, and never shows secret.
func oneLine(t *testing.T, r result, secret string, want ...string) {
	t.Helper()
	if r.code != 125 {
		t.Fatalf("exit %d, want 125; stdout %q stderr:\n%s", r.code, r.stdout, r.stderr)
	}
	if n := strings.Count(strings.TrimSuffix(r.stderr, "\n"), "\n"); n != 0 || !strings.HasPrefix(r.stderr, "tessel-proxy: run: ") {
		t.Errorf("stderr is not one line starting tessel-proxy: run: (%d more):\n%s", n, r.stderr)
	}
	for _, w := range want {
		if !strings.Contains(r.stderr, w) {
			t.Errorf("stderr %q does not say %q", r.stderr, w)
		}
	}
	if secret != "" && strings.Contains(r.stderr+r.stdout, secret) {
		t.Errorf("the output shows the password:\n%s", r.stderr)
	}
}

func TestRunThroughUpstreamProxy(t *testing.T) {
	needTools(t, "curl", "tinyproxy")
	srv := startDevServer(t)
	target := greetingServer(t, false)
	serverAddr := srv.env["PROXY_HOST"] + ":" + srv.env["PROXY_PORT"]

	t.Run("without credentials", func(t *testing.T) {
		up := startTinyproxy(t, "127.0.0.1", "", "")
		r := runTool(t, srv.clientEnv(t, "PROXY_VIA=http://"+up.addr), "run", "--", "curl", "-sS", "--fail", target.URL+"/hello")
		if r.code != 0 || r.stdout != greeting {
			t.Fatalf("curl through run via tinyproxy: exit %d, stdout %q, stderr:\n%s\ntinyproxy log:\n%s", r.code, r.stdout, r.stderr, up.log(t))
		}
		if !strings.Contains(up.log(t), "CONNECT "+serverAddr) {
			t.Errorf("tinyproxy's log shows no CONNECT %s:\n%s", serverAddr, up.log(t))
		}

		// Once the upstream proxy is gone, the same run fails and says which proxy.
		up.stop()
		r = runTool(t, srv.clientEnv(t, "PROXY_VIA=http://"+up.addr), "run", "--", "curl", "-sS", target.URL+"/hello")
		oneLine(t, r, "", "cannot reach the upstream proxy", up.addr, "PROXY_VIA", "connection refused")
	})

	t.Run("with credentials", func(t *testing.T) {
		const pass = "pa55-w0rd-s3cret"
		up := startTinyproxy(t, "127.0.0.1", "alice", pass)
		r := runTool(t, srv.clientEnv(t, "PROXY_VIA=http://alice:"+pass+"@"+up.addr), "run", "--", "curl", "-sS", "--fail", target.URL+"/hello")
		if r.code != 0 || r.stdout != greeting {
			t.Fatalf("with credentials: exit %d, stdout %q, stderr:\n%s\ntinyproxy log:\n%s", r.code, r.stdout, r.stderr, up.log(t))
		}
		if !strings.Contains(up.log(t), "CONNECT "+serverAddr) {
			t.Errorf("tinyproxy's log shows no CONNECT %s:\n%s", serverAddr, up.log(t))
		}

		r = runTool(t, srv.clientEnv(t, "PROXY_VIA=http://"+up.addr), "run", "--", "curl", "-sS", target.URL+"/hello")
		oneLine(t, r, "", "407", "wants a user and password", "PROXY_VIA=http://USER:PASSWORD@"+up.addr)
		r = runTool(t, srv.clientEnv(t, "PROXY_VIA=http://alice:wrong-"+pass+"@"+up.addr), "run", "--", "curl", "-sS", target.URL+"/hello")
		// tinyproxy answers wrong credentials with 401 rather than 407.
		oneLine(t, r, pass, "upstream proxy authentication failed", "check the user and password in PROXY_VIA", "alice:********@")

		// The debug log of a working run names the upstream proxy, password masked.
		r = runTool(t, srv.clientEnv(t, "PROXY_VIA=http://alice:"+pass+"@"+up.addr), "run", "--debug", "--", "curl", "-sS", "--fail", target.URL+"/hello")
		if r.code != 0 || !strings.Contains(r.stderr, "via upstream proxy http://alice:********@"+up.addr) || strings.Contains(r.stderr, pass) {
			t.Errorf("run --debug: exit %d, stderr:\n%s", r.code, r.stderr)
		}
		// The program gets the front, not the upstream proxy and its password.
		r = runTool(t, srv.clientEnv(t, "PROXY_VIA=http://alice:"+pass+"@"+up.addr), "run", "--", "sh", "-c", `printf '%s' "${PROXY_VIA-unset} $HTTPS_PROXY"`)
		if r.code != 0 || !strings.HasPrefix(r.stdout, "unset http://") || strings.Contains(r.stdout, pass) {
			t.Errorf("the program's environment: exit %d, %q", r.code, r.stdout)
		}
		// route says so too.
		r = runTool(t, srv.clientEnv(t, "PROXY_VIA=http://alice:"+pass+"@"+up.addr), "route", "example.com")
		if want := "proxy (tunnel to " + serverAddr + " via upstream proxy http://alice:********@" + up.addr + " (PROXY_VIA))\n"; r.stdout != want {
			t.Errorf("route: %q, want %q", r.stdout, want)
		}
	})
}

func TestRunBadTransportSettings(t *testing.T) {
	srv := startDevServer(t)
	port := srv.env["PROXY_PORT"]
	for _, tc := range []struct {
		name string
		env  []string
		want []string
	}{
		{"plain ws", []string{"PROXY_HOST=ws://127.0.0.1:" + port + "/tunnel"}, []string{"PROXY_HOST", "wss://"}},
		{"https URL", []string{"PROXY_HOST=https://127.0.0.1:" + port + "/"}, []string{"PROXY_HOST", "is a URL"}},
		{"socks upstream", []string{"PROXY_VIA=socks5://alice:s3cret-x@127.0.0.1:1080"}, []string{"PROXY_VIA", "not supported"}},
		{"upstream URL with path", []string{"PROXY_VIA=http://alice:s3cret-x@127.0.0.1:3128/x"}, []string{"PROXY_VIA", "no path"}},
		{"bad HTTPS_PROXY", []string{"PROXY_HOST=proxy.invalid", "HTTPS_PROXY=socks5://127.0.0.1:1080"}, []string{"HTTPS_PROXY", "not supported"}},
		{"wrong path", []string{"PROXY_HOST=wss://127.0.0.1:" + port + "/nope"}, []string{"404", "/nope", "not a WebSocket upgrade"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := runTool(t, srv.clientEnv(t, tc.env...), "run", "--", "true")
			oneLine(t, r, "s3cret-x", tc.want...)
		})
	}
}

func TestRunOverWebSocketToServe(t *testing.T) {
	needTools(t, "curl")
	srv := startDevServer(t)
	target := greetingServer(t, false)
	r := runTool(t, srv.clientEnv(t, "PROXY_HOST=wss://127.0.0.1:"+srv.env["PROXY_PORT"]+"/tunnel"),
		"run", "--", "curl", "-sS", "--fail", target.URL+"/hello")
	if r.code != 0 || r.stdout != greeting {
		t.Fatalf("curl over wss:// to serve: exit %d, stdout %q, stderr:\n%s\nserve log:\n%s", r.code, r.stdout, r.stderr, srv.stderr)
	}
	waitFor(t, func() bool { return strings.Contains(srv.stderr.String(), ":"+targetPort(target)) },
		"serve's log names the target port %s; log:\n%s", targetPort(target), srv.stderr)
}

// nginxConfig is deploy/nginx/tessel-proxy.conf, the configuration the README documents,
// with the ports and paths of this test put in. Each replaced line must be there: a test
// that quietly stopped using the documented file would prove nothing about it.
func nginxConfig(t *testing.T, port int, certFile, keyFile, wsAddr, docroot string) string {
	t.Helper()
	conf := readFile(t, "../deploy/nginx/tessel-proxy.conf")
	readme := readFile(t, "../README.md")
	if !strings.Contains(readme, conf) {
		t.Fatal("README.md does not show deploy/nginx/tessel-proxy.conf as it is: update the README's nginx section")
	}
	for _, r := range [][2]string{
		{"listen 443 ssl;", fmt.Sprintf("listen 127.0.0.1:%d ssl;", port)},
		{"listen [::]:443 ssl;", ""},
		{"/etc/letsencrypt/live/proxy.example.net/fullchain.pem", certFile},
		{"/etc/letsencrypt/live/proxy.example.net/privkey.pem", keyFile},
		{"http://127.0.0.1:8080;", "http://" + wsAddr + ";"},
		{"root /var/www/html;", "root " + docroot + ";"},
	} {
		if !strings.Contains(conf, r[0]) {
			t.Fatalf("deploy/nginx/tessel-proxy.conf no longer has %q; update this test with it", r[0])
		}
		conf = strings.ReplaceAll(conf, r[0], r[1])
	}
	return conf
}

// startNginx runs nginx with the documented server block in front of wsAddr, on a free
// loopback port, with a certificate for 127.0.0.1, and returns its port and certificate.
func startNginx(t *testing.T, wsAddr string) (int, string) {
	t.Helper()
	needTools(t, "nginx")
	dir := t.TempDir()
	// nginx's workers run as an unprivileged user: the document root's path must be open.
	os.Chmod(filepath.Dir(dir), 0o755)
	os.Chmod(dir, 0o755)
	docroot := filepath.Join(dir, "www")
	os.Mkdir(docroot, 0o755)
	if err := writeFile(filepath.Join(docroot, "index.html"), "the website\n"); err != nil {
		t.Fatal(err)
	}
	certFile, keyFile := filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	certPEM, keyPEM, err := proxyserver.GenerateSelfSigned([]string{"127.0.0.1"}, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if err := writeFile(certFile, string(certPEM)); err != nil {
		t.Fatal(err)
	}
	if err := writeFile(keyFile, string(keyPEM)); err != nil {
		t.Fatal(err)
	}
	port := freePort(t)
	server := nginxConfig(t, port, certFile, keyFile, wsAddr, docroot)
	if err := writeFile(filepath.Join(dir, "tessel-proxy.conf"), server); err != nil {
		t.Fatal(err)
	}
	main := fmt.Sprintf(`daemon off; pid %[1]s/nginx.pid; error_log %[1]s/error.log info; worker_processes 1;
events { worker_connections 256; }
http {
  access_log %[1]s/access.log;
  client_body_temp_path %[1]s/body; proxy_temp_path %[1]s/proxy;
  include %[1]s/tessel-proxy.conf;
}
`, dir)
	if err := writeFile(filepath.Join(dir, "nginx.conf"), main); err != nil {
		t.Fatal(err)
	}
	out := &syncbuf.Buffer{}
	cmd := exec.Command("nginx", "-p", dir, "-e", filepath.Join(dir, "error.log"), "-c", filepath.Join(dir, "nginx.conf"))
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { cmd.Wait(); close(done) }()
	t.Cleanup(func() {
		cmd.Process.Signal(syscall.SIGQUIT)
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			cmd.Process.Kill()
			<-done
		}
	})
	waitForTCP(t, fmt.Sprintf("127.0.0.1:%d", port), out)
	return port, certFile
}

func TestRunThroughNginxToWebSocketListener(t *testing.T) {
	needTools(t, "curl", "nginx")
	wsAddr := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	srv := startDevServer(t, "--ws-listen", wsAddr)
	port, nginxCert := startNginx(t, wsAddr)
	target := greetingServer(t, false)

	// The website still answers on the shared port.
	site := runCommand(t, baseEnv(t), "curl", "-sS", "--fail", "--cacert", nginxCert, fmt.Sprintf("https://127.0.0.1:%d/index.html", port))
	if site.code != 0 || site.stdout != "the website\n" {
		t.Fatalf("the website behind nginx: exit %d %q %s", site.code, site.stdout, site.stderr)
	}

	// PROXY_PORT= : the URL has the port, and a different PROXY_PORT would be an error.
	env := srv.clientEnv(t, fmt.Sprintf("PROXY_HOST=wss://127.0.0.1:%d/tunnel", port), "PROXY_PORT=", "PROXY_CERT="+nginxCert)
	r := runTool(t, env, "run", "--", "curl", "-sS", "--fail", target.URL+"/hello")
	if r.code != 0 || r.stdout != greeting {
		t.Fatalf("curl through nginx and --ws-listen: exit %d, stdout %q, stderr:\n%s\nserve log:\n%s", r.code, r.stdout, r.stderr, srv.stderr)
	}
	// serve saw the tunnel arrive from nginx, and names the client nginx named.
	waitFor(t, func() bool { return strings.Contains(srv.stderr.String(), "remote=\"127.0.0.1 via 127.0.0.1:") },
		"serve's log shows a tunnel from 127.0.0.1 via nginx; log:\n%s", srv.stderr)

	r = runTool(t, srv.clientEnv(t, fmt.Sprintf("PROXY_HOST=wss://127.0.0.1:%d/elsewhere", port), "PROXY_PORT=", "PROXY_CERT="+nginxCert), "run", "--", "true")
	oneLine(t, r, "", "404", "/elsewhere")
}

// A machine whose only way out is the HTTP proxy: the client runs in a network namespace
// that reaches the upstream proxy (tinyproxy, on this machine) and nothing else; serve runs
// in a namespace of its own that only the upstream proxy reaches, with the target on its
// loopback.
//
//	client ns  198.18.N.2 ──veth── 198.18.N.1  this machine: tinyproxy
//	serve ns   198.19.N.2 ──veth── 198.19.N.1  this machine
func TestOnlyWayOutIsTheHTTPProxy(t *testing.T) {
	needTools(t, "ip", "curl", "python3", "tinyproxy")
	needRoot(t)
	n := freeTestSubnet(t)
	// The pid in the names tells removeStaleNetworks that they belong to a running test.
	suffix := fmt.Sprint(os.Getpid())
	clientNS, serveNS := "tpx-awc-"+suffix, "tpx-aws-"+suffix
	clientHost, clientAddr := fmt.Sprintf("198.18.%d.1", n), fmt.Sprintf("198.18.%d.2", n)
	serveHost, serveAddr := fmt.Sprintf("198.19.%d.1", n), fmt.Sprintf("198.19.%d.2", n)
	makeNamespace(t, clientNS, "tpxc"+suffix, clientHost, clientAddr)
	makeNamespace(t, serveNS, "tpxs"+suffix, serveHost, serveAddr)

	url := startHTTPServerIn(t, serveNS, "127.0.0.1")
	inServe := []string{"ip", "netns", "exec", serveNS}
	srv := startDevServerIn(t, inServe, "--listen", serveAddr+":0")
	up := startTinyproxy(t, clientHost, "", "")
	inClient := []string{"ip", "netns", "exec", clientNS}
	proxyURL := "http://" + up.addr

	// Without the upstream proxy, the client cannot reach serve at all.
	direct := runCommand(t, srv.clientEnv(t, "PROXY_VIA=none", "HTTPS_PROXY="+proxyURL),
		append(inClient, binary, "run", "--", "curl", "-sS", "--max-time", "5", url)...)
	oneLine(t, direct, "", "cannot reach the proxy")

	// An upstream proxy address where nothing answers (no such host on the link).
	nobody := fmt.Sprintf("http://198.18.%d.3:3128", n)
	gone := runCommand(t, srv.clientEnv(t, "PROXY_VIA="+nobody), append(inClient, binary, "run", "--", "true")...)
	oneLine(t, gone, "", "cannot reach the upstream proxy "+nobody+" (PROXY_VIA)")

	for _, tc := range []struct {
		name string
		env  []string
	}{
		{"HTTPS_PROXY as the machine has it", []string{"HTTPS_PROXY=" + proxyURL, "NO_PROXY=localhost,127.0.0.1"}},
		{"https_proxy", []string{"https_proxy=" + proxyURL}},
		{"PROXY_VIA", []string{"PROXY_VIA=" + proxyURL}},
		{"wss through PROXY_VIA", []string{"PROXY_VIA=" + proxyURL, "PROXY_HOST=wss://" + srv.env["PROXY_HOST"] + ":" + srv.env["PROXY_PORT"] + "/tunnel"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := runCommand(t, srv.clientEnv(t, tc.env...), append(inClient, binary, "run", "--", "curl", "-sS", "--fail", "--max-time", "20", url)...)
			if r.code != 0 || r.stdout != greeting {
				t.Fatalf("exit %d, stdout %q, stderr:\n%s\ntinyproxy log:\n%s\nserve log:\n%s", r.code, r.stdout, r.stderr, up.log(t), srv.stderr)
			}
		})
	}
	if want := "CONNECT " + srv.env["PROXY_HOST"] + ":" + srv.env["PROXY_PORT"]; !strings.Contains(up.log(t), want) {
		t.Errorf("tinyproxy's log shows no %s:\n%s", want, up.log(t))
	}
}

// freeTestSubnet picks N such that neither 198.18.N.0/24 nor 198.19.N.0/24 is on any
// interface of this machine yet: other tests may be using their own at the same time.
func freeTestSubnet(t *testing.T) int {
	t.Helper()
	out, err := exec.Command("ip", "-o", "addr", "show").Output()
	if err != nil {
		t.Fatalf("ip addr show: %v", err)
	}
	for range 100 {
		n := 8 + rand.IntN(240)
		if !strings.Contains(string(out), fmt.Sprintf(" 198.18.%d.", n)) && !strings.Contains(string(out), fmt.Sprintf(" 198.19.%d.", n)) {
			return n
		}
	}
	t.Fatal("no free /24 in 198.18.0.0/15 for this test")
	return 0
}

// caddyConfig is deploy/caddy/Caddyfile, the configuration the README documents, with the
// test's port, certificate, backend and document root put in, and global options that keep
// Caddy to itself (no admin endpoint, no certificate authority, storage in dir).
func caddyConfig(t *testing.T, dir string, port int, certFile, keyFile, wsAddr, docroot string) string {
	t.Helper()
	conf := readFile(t, "../deploy/caddy/Caddyfile")
	if !strings.Contains(readFile(t, "../README.md"), conf) {
		t.Fatal("README.md does not show deploy/caddy/Caddyfile as it is: update the README's Caddy section")
	}
	for _, r := range [][2]string{
		{"proxy.example.net {", fmt.Sprintf("https://127.0.0.1:%d {\n\ttls %s %s", port, certFile, keyFile)},
		{"reverse_proxy 127.0.0.1:8080", "reverse_proxy " + wsAddr},
		{"root * /var/www/html", "root * " + docroot},
	} {
		if !strings.Contains(conf, r[0]) {
			t.Fatalf("deploy/caddy/Caddyfile no longer has %q; update this test with it", r[0])
		}
		conf = strings.ReplaceAll(conf, r[0], r[1])
	}
	return fmt.Sprintf("{\n\tadmin off\n\tauto_https off\n\tstorage file_system %s\n}\n\n", filepath.Join(dir, "data")) + conf
}

func TestRunThroughCaddyToWebSocketListener(t *testing.T) {
	needTools(t, "curl", "caddy")
	wsAddr := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	srv := startDevServer(t, "--ws-listen", wsAddr)
	target := greetingServer(t, false)

	dir := t.TempDir()
	docroot := filepath.Join(dir, "www")
	os.Mkdir(docroot, 0o755)
	if err := writeFile(filepath.Join(docroot, "index.html"), "the website\n"); err != nil {
		t.Fatal(err)
	}
	certFile, keyFile := filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	certPEM, keyPEM, err := proxyserver.GenerateSelfSigned([]string{"127.0.0.1"}, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if err := writeFile(certFile, string(certPEM)); err != nil {
		t.Fatal(err)
	}
	if err := writeFile(keyFile, string(keyPEM)); err != nil {
		t.Fatal(err)
	}
	port := freePort(t)
	caddyfile := filepath.Join(dir, "Caddyfile")
	if err := writeFile(caddyfile, caddyConfig(t, dir, port, certFile, keyFile, wsAddr, docroot)); err != nil {
		t.Fatal(err)
	}
	out := &syncbuf.Buffer{}
	cmd := exec.Command("caddy", "run", "--config", caddyfile, "--adapter", "caddyfile")
	cmd.Env = append(baseEnv(t), "XDG_DATA_HOME="+filepath.Join(dir, "data"), "XDG_CONFIG_HOME="+filepath.Join(dir, "config"))
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { cmd.Wait(); close(done) }()
	t.Cleanup(func() {
		cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			cmd.Process.Kill()
			<-done
		}
	})
	waitForTCP(t, fmt.Sprintf("127.0.0.1:%d", port), out)

	site := runCommand(t, baseEnv(t), "curl", "-sS", "--fail", "--cacert", certFile, fmt.Sprintf("https://127.0.0.1:%d/index.html", port))
	if site.code != 0 || site.stdout != "the website\n" {
		t.Fatalf("the website behind Caddy: exit %d %q %s\ncaddy:\n%s", site.code, site.stdout, site.stderr, out)
	}
	env := srv.clientEnv(t, fmt.Sprintf("PROXY_HOST=wss://127.0.0.1:%d/tunnel", port), "PROXY_PORT=", "PROXY_CERT="+certFile)
	r := runTool(t, env, "run", "--", "curl", "-sS", "--fail", target.URL+"/hello")
	if r.code != 0 || r.stdout != greeting {
		t.Fatalf("curl through Caddy and --ws-listen: exit %d, stdout %q, stderr:\n%s\nserve log:\n%s\ncaddy:\n%s", r.code, r.stdout, r.stderr, srv.stderr, out)
	}
	waitFor(t, func() bool { return strings.Contains(srv.stderr.String(), "remote=\"127.0.0.1 via 127.0.0.1:") },
		"serve's log shows a tunnel from 127.0.0.1 via Caddy; log:\n%s", srv.stderr)
}
