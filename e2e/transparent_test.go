//go:build linux

package e2e

import (
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/tessel/tessel-proxy/internal/syncbuf"
	"github.com/tessel/tessel-proxy/internal/testcert"
	"github.com/tessel/tessel-proxy/internal/testpty"
	"golang.org/x/net/dns/dnsmessage"
)

// targetName is the name of the target in the transparent-mode tests. Only the proxy
// server can resolve it (its /etc/hosts, in a mount namespace of its own, says where the
// target is): a program that reaches the target by this name went through the tunnel, and
// its name was never looked up on the client's side.
const targetName = "target.tessel-proxy.test"

// transparentWorld is the network of a transparent-mode test:
//
//	device ns  198.18.N.2 ──veth── 198.18.N.1  this machine (serve; the device's DNS and a
//	                                           local web server, where a test needs them)
//	target ns  198.19.N.2 ──veth── 198.19.N.1  this machine
//
// with N random, so that it does not meet the fixed addresses of the other namespace tests.
// The device namespace has no route to the target: only the tunnel reaches it.
type transparentWorld struct {
	devNS, devVeth          string // the device namespace and the host side of its veth
	devHostAddr, targetAddr string
	srv                     *devServer
	certPEM                 string // the target's TLS certificate (for localhost)
	dir                     string // readable by every user: programs and their files
}

func newTransparentWorld(t *testing.T) *transparentWorld {
	t.Helper()
	needTools(t, "ip", "python3", "unshare")
	needRoot(t)
	n := freeSubnet(t)
	suffix := fmt.Sprintf("%05d", rand.IntN(100000))
	w := &transparentWorld{
		devNS: "tpx-tdev-" + suffix, devVeth: "tpxa" + suffix + "h",
		devHostAddr: fmt.Sprintf("198.18.%d.1", n), targetAddr: fmt.Sprintf("198.19.%d.2", n),
		dir: publicDir(t),
	}
	targetNS := "tpx-ttgt-" + suffix
	makeNamespace(t, w.devNS, "tpxa"+suffix, w.devHostAddr, fmt.Sprintf("198.18.%d.2", n))
	makeNamespace(t, targetNS, "tpxb"+suffix, fmt.Sprintf("198.19.%d.1", n), w.targetAddr)

	startHTTPServerIn(t, targetNS, w.targetAddr)
	w.certPEM = startTLSServerIn(t, targetNS, w.targetAddr, w.dir)

	hosts := filepath.Join(w.dir, "hosts")
	if err := writeFile(hosts, "127.0.0.1 localhost\n"+w.targetAddr+" "+targetName+"\n"); err != nil {
		t.Fatal(err)
	}
	inOwnHosts := []string{"unshare", "-m", "sh", "-c", `mount --bind "$1" /etc/hosts && shift && exec "$@"`, "sh", hosts}
	w.srv = startDevServerIn(t, inOwnHosts, "--listen", w.devHostAddr+":0", "--allow", "198.19.0.0/16")
	return w
}

// freeSubnet picks N for 198.18.N.0/24 and 198.19.N.0/24 such that neither is on this
// machine's routes yet: other tests make namespaces of their own in the same ranges.
func freeSubnet(t *testing.T) int {
	t.Helper()
	out, err := exec.Command("ip", "-4", "route", "show", "table", "all").Output()
	if err != nil {
		t.Fatalf("ip route: %v", err)
	}
	for range 100 {
		n := 8 + rand.IntN(240)
		if !strings.Contains(string(out), fmt.Sprintf("198.18.%d.", n)) && !strings.Contains(string(out), fmt.Sprintf("198.19.%d.", n)) {
			return n
		}
	}
	t.Fatal("no free /24 in 198.18.0.0/15")
	return 0
}

// env is the environment of a client in the device namespace: the server's settings, the
// certificate as text (so that any user can read it), and overrides.
func (w *transparentWorld) env(t *testing.T, overrides ...string) []string {
	env := w.srv.clientEnv(t, "PROXY_CERT="+readFile(t, w.srv.env["PROXY_CERT"]),
		"HOME="+w.dir, "XDG_CONFIG_HOME="+w.dir, "XDG_STATE_HOME="+w.dir)
	return append(env, overrides...)
}

// inDevice returns argv run in the device namespace, as user nobody when asUser.
func (w *transparentWorld) inDevice(asUser bool, argv ...string) []string {
	out := []string{"ip", "netns", "exec", w.devNS}
	if asUser {
		out = append(out, "setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups", "--")
	}
	return append(out, argv...)
}

// transparent runs argv through `run --transparent` in the device namespace.
func (w *transparentWorld) transparent(t *testing.T, asUser bool, env []string, argv ...string) result {
	t.Helper()
	return runCommand(t, env, w.inDevice(asUser, append([]string{binary, "run", "--transparent", "--"}, argv...)...)...)
}

// publicDir is a temporary directory that every user may read, for programs run as nobody.
func publicDir(t *testing.T) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "tpx-public-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	// The tessel-proxy binary's own directory too.
	if err := os.Chmod(filepath.Dir(binary), 0o755); err != nil {
		t.Fatal(err)
	}
	return dir
}

const tlsServerScript = `
import http.server, ssl, sys
addr, port, cert, key, greeting = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4], sys.argv[5].encode()
class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        self.send_response(200)
        self.send_header("Content-Length", str(len(greeting)))
        self.end_headers()
        self.wfile.write(greeting)
    def log_message(self, *args):
        pass
srv = http.server.HTTPServer((addr, port), H)
ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
ctx.load_cert_chain(cert, key)
srv.socket = ctx.wrap_socket(srv.socket, server_side=True)
srv.serve_forever()
`

// startTLSServerIn serves the greeting over HTTPS on addr:8443 in ns, with a certificate
// for localhost, and returns the certificate (PEM).
func startTLSServerIn(t *testing.T, ns, addr, dir string) string {
	t.Helper()
	cert := testcert.New(t)
	keyDER, err := x509.MarshalPKCS8PrivateKey(cert.TLS.PrivateKey)
	if err != nil {
		t.Fatal(err)
	}
	certFile, keyFile := filepath.Join(dir, "tls.pem"), filepath.Join(t.TempDir(), "tls.key")
	if err := os.WriteFile(certFile, cert.PEM, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}), 0o600); err != nil {
		t.Fatal(err)
	}
	srv := exec.Command("ip", "netns", "exec", ns, "python3", "-c", tlsServerScript, addr, "8443", certFile, keyFile, greeting)
	log := &syncbuf.Buffer{}
	srv.Stdout, srv.Stderr = log, log
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Process.Kill(); srv.Wait() })
	waitForListen(t, ns, addr+":8443", log)
	return string(cert.PEM)
}

// probeSource is a program that ignores proxy variables: it dials with net.Dial, sends an
// HTTP/1.0 request and prints the body. Built with CGO_ENABLED=0, it is a static binary
// with Go's own resolver.
const probeSource = `package main

import (
	"fmt"
	"io"
	"net"
	"os"
	"strings"
	"time"
)

func main() {
	c, err := net.DialTimeout("tcp", os.Args[1], 10*time.Second)
	if err != nil {
		fmt.Println("dial:", err)
		os.Exit(3)
	}
	fmt.Fprintf(c, "GET /hello.txt HTTP/1.0\r\nHost: %s\r\n\r\n", os.Args[1])
	b, _ := io.ReadAll(c)
	_, body, _ := strings.Cut(string(b), "\r\n\r\n")
	fmt.Print(body)
}
`

// buildProbe builds probeSource as a static binary in dir.
func buildProbe(t *testing.T, dir string) string {
	t.Helper()
	src := t.TempDir()
	if err := writeFile(filepath.Join(src, "go.mod"), "module probe\n\ngo 1.21\n"); err != nil {
		t.Fatal(err)
	}
	if err := writeFile(filepath.Join(src, "main.go"), probeSource); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, "probe")
	build := exec.Command("go", "build", "-o", out, ".")
	build.Dir = src
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if b, err := build.CombinedOutput(); err != nil {
		t.Fatalf("build the static probe: %v\n%s", err, b)
	}
	if b, _ := exec.Command("file", out).Output(); len(b) > 0 && !strings.Contains(string(b), "statically linked") {
		t.Fatalf("the probe is not static: %s", b)
	}
	return out
}

const nodeClient = `
const net = require('net'), tls = require('tls'), fs = require('fs');
const [host, ca] = process.argv.slice(1);
function body(sock) {
  return new Promise((resolve, reject) => {
    let data = '';
    sock.on('data', (c) => { data += c; });
    sock.on('end', () => resolve(data.split('\r\n\r\n')[1]));
    sock.on('error', reject);
  });
}
(async () => {
  const a = net.connect({ host, port: 8080 }, () => a.write('GET /hello.txt HTTP/1.0\r\n\r\n'));
  process.stdout.write('net: ' + await body(a));
  const b = tls.connect({ host, port: 8443, ca: fs.readFileSync(ca), servername: 'localhost' },
    () => b.write('GET / HTTP/1.0\r\n\r\n'));
  process.stdout.write('tls: ' + await body(b));
})().catch((e) => { console.log('error: ' + e.message); process.exit(3); });
`

const pythonClient = `
import socket, sys
port = int(sys.argv[1])
for host in sys.argv[2:]:
    try:
        s = socket.create_connection((host, port), timeout=10)
    except OSError as e:
        print(host, "error:", e.strerror)
        continue
    s.sendall(b"GET /hello.txt HTTP/1.0\r\n\r\n")
    data = b""
    while True:
        chunk = s.recv(65536)
        if not chunk:
            break
        data += chunk
    print(host, data.split(b"\r\n\r\n", 1)[1].decode().strip())
`

// clientsReachTarget runs the static Go probe, Node's net and tls, and python3's sockets
// in transparent mode (as nobody when asUser) and checks that each reached the target
// through the tunnel.
func clientsReachTarget(t *testing.T, w *transparentWorld, asUser bool) {
	needTools(t, "node", "go", "setpriv")
	probe := buildProbe(t, w.dir)
	caFile := filepath.Join(w.dir, "tls.pem")
	env := w.env(t, "PROXY_LOCAL=none")
	want := strings.TrimSpace(greeting)

	// The probe ignores proxy variables: plain run does not reach the target.
	if r := runCommand(t, env, w.inDevice(asUser, binary, "run", "--", probe, targetName+":8080")...); r.code == 0 {
		t.Fatalf("plain run: the probe reached the target without transparent mode: %q", r.stdout)
	}

	checks := []struct {
		name string
		argv []string
		want string
	}{
		{"static Go binary", []string{probe, targetName + ":8080"}, want},
		{"Node net.connect and tls.connect", []string{"node", "-e", nodeClient, targetName, caFile}, "net: " + want + "\ntls: " + want},
		{"python3 sockets, by name and by address", []string{"python3", "-c", pythonClient, "8080", targetName, w.targetAddr},
			targetName + " " + want + "\n" + w.targetAddr + " " + want},
	}
	for _, c := range checks {
		r := w.transparent(t, asUser, env, c.argv...)
		if r.code != 0 || strings.TrimSpace(r.stdout) != c.want {
			t.Errorf("%s: exit %d, stdout %q, want %q; stderr:\n%s\nserve log:\n%s", c.name, r.code, r.stdout, c.want, r.stderr, w.srv.stderr)
		}
	}
	// The target's name went through the tunnel unresolved, for the proxy to resolve.
	if log := w.srv.stderr.String(); !strings.Contains(log, "target="+targetName+":8080") || !strings.Contains(log, "target="+targetName+":8443") {
		t.Errorf("the proxy was not asked for %s by name; serve log:\n%s", targetName, log)
	}
}

func TestTransparentClientsReachTargetOnlyThroughTunnel(t *testing.T) {
	w := newTransparentWorld(t)
	clientsReachTarget(t, w, false)
}

func TestTransparentAsOrdinaryUser(t *testing.T) {
	if v := strings.TrimSpace(readFile(t, "/proc/sys/user/max_user_namespaces")); v == "0" {
		t.Fatal("user namespaces are disabled here (user.max_user_namespaces = 0); this test needs them")
	}
	w := newTransparentWorld(t)
	openTUNToEveryone(t)
	clientsReachTarget(t, w, true)

	// Inside, the program is still nobody, with no capabilities.
	r := w.transparent(t, true, w.env(t), "sh", "-c", "id -u; id -g; grep ^CapEff /proc/self/status")
	if want := "65534\n65534\nCapEff:\t0000000000000000\n"; r.code != 0 || r.stdout != want {
		t.Errorf("as nobody: exit %d, stdout %q, want %q; stderr:\n%s", r.code, r.stdout, want, r.stderr)
	}
}

// openTUNToEveryone makes /dev/net/tun mode 0666, as most distributions ship it, until the
// test ends.
func openTUNToEveryone(t *testing.T) {
	t.Helper()
	setTUNMode(t, 0o666)
}

func setTUNMode(t *testing.T, mode os.FileMode) {
	t.Helper()
	st, err := os.Stat("/dev/net/tun")
	if err != nil {
		t.Fatalf("no /dev/net/tun: %v", err)
	}
	if err := os.Chmod("/dev/net/tun", mode); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.Chmod("/dev/net/tun", st.Mode().Perm()) })
}

// localDNS is the device's own DNS server: it answers A queries for name with addr, and
// records every name it was asked for.
type localDNS struct {
	mu    sync.Mutex
	asked []string
}

func startLocalDNS(t *testing.T, listen, name, addr string) *localDNS {
	t.Helper()
	pc, err := net.ListenPacket("udp", net.JoinHostPort(listen, "53"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pc.Close() })
	d := &localDNS{}
	go func() {
		buf := make([]byte, 1500)
		for {
			n, from, err := pc.ReadFrom(buf)
			if err != nil {
				return
			}
			var m dnsmessage.Message
			if m.Unpack(buf[:n]) != nil || len(m.Questions) == 0 {
				continue
			}
			q := m.Questions[0]
			d.mu.Lock()
			d.asked = append(d.asked, q.Name.String())
			d.mu.Unlock()
			m.Response, m.RecursionAvailable = true, true
			m.Answers = nil
			switch {
			case !strings.EqualFold(q.Name.String(), name+"."):
				m.RCode = dnsmessage.RCodeNameError
			case q.Type == dnsmessage.TypeA:
				m.Answers = []dnsmessage.Resource{{
					Header: dnsmessage.ResourceHeader{Name: q.Name, Type: q.Type, Class: q.Class, TTL: 5},
					Body:   &dnsmessage.AResource{A: [4]byte(net.ParseIP(addr).To4())},
				}}
			}
			if b, err := m.Pack(); err == nil {
				pc.WriteTo(b, from)
			}
		}
	}()
	return d
}

func (d *localDNS) names() string {
	d.mu.Lock()
	defer d.mu.Unlock()
	return strings.Join(d.asked, " ")
}

// startLocalWebServer serves "local\n" on addr, on this machine (outside the device).
func startLocalWebServer(t *testing.T, addr string) string {
	t.Helper()
	l, err := net.Listen("tcp", addr+":0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { fmt.Fprint(w, "local\n") })}
	go srv.Serve(l)
	t.Cleanup(func() { srv.Close() })
	_, port, _ := net.SplitHostPort(l.Addr().String())
	return port
}

func TestTransparentDNSDoesNotLeak(t *testing.T) {
	needTools(t, "tcpdump")
	w := newTransparentWorld(t)
	const localName = "printer.tessel-proxy.test"

	// The device's resolver is a DNS server on this machine, reached over the device's veth,
	// where tcpdump watches.
	etc := filepath.Join("/etc/netns", w.devNS)
	if err := os.MkdirAll(etc, 0o755); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(etc) })
	if err := writeFile(filepath.Join(etc, "resolv.conf"), "nameserver "+w.devHostAddr+"\n"); err != nil {
		t.Fatal(err)
	}
	dns := startLocalDNS(t, w.devHostAddr, localName, w.devHostAddr)
	port := startLocalWebServer(t, w.devHostAddr)

	capture := exec.Command("tcpdump", "-i", w.devVeth, "-n", "-l", "-U", "port", "53")
	captured, tcpdumpErr := &syncbuf.Buffer{}, &syncbuf.Buffer{}
	capture.Stdout, capture.Stderr = captured, tcpdumpErr
	if err := capture.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { capture.Process.Kill(); capture.Wait() }()
	for deadline := time.Now().Add(10 * time.Second); !strings.Contains(tcpdumpErr.String(), "listening on"); {
		if time.Now().After(deadline) {
			t.Fatalf("tcpdump did not start: %s", tcpdumpErr)
		}
		time.Sleep(20 * time.Millisecond)
	}

	// The tunneled name is resolved and reached (through the tunnel); the local name is
	// resolved by the device's DNS and reached directly, by its name's PROXY_LOCAL rule.
	env := w.env(t, "PROXY_LOCAL="+localName)
	r := w.transparent(t, false, env, "python3", "-c", pythonClient, "8080", targetName)
	if want := targetName + " " + strings.TrimSpace(greeting); r.code != 0 || strings.TrimSpace(r.stdout) != want {
		t.Fatalf("tunneled name: exit %d, stdout %q, want %q; stderr:\n%s", r.code, r.stdout, want, r.stderr)
	}
	r = w.transparent(t, false, env, "python3", "-c", pythonClient, port, localName)
	if want := localName + " local"; r.code != 0 || strings.TrimSpace(r.stdout) != want {
		t.Fatalf("local name: exit %d, stdout %q, want %q; stderr:\n%s", r.code, r.stdout, want, r.stderr)
	}

	time.Sleep(500 * time.Millisecond) // tcpdump -U writes each packet as it comes; let the last arrive
	capture.Process.Signal(os.Interrupt)
	capture.Wait()
	if got := captured.String(); strings.Contains(got, targetName) || !strings.Contains(got, localName) {
		t.Errorf("DNS on the device's veth: want queries for %s and none for %s; tcpdump saw:\n%s", localName, targetName, got)
	}
	if got := dns.names(); strings.Contains(got, targetName) || !strings.Contains(got, localName) {
		t.Errorf("the device's DNS server was asked for %q", got)
	}
}

func TestTransparentLocalAddressGoesDirect(t *testing.T) {
	w := newTransparentWorld(t)
	port := startLocalWebServer(t, w.devHostAddr)
	target := "target=" + net.JoinHostPort(w.devHostAddr, port)

	r := w.transparent(t, false, w.env(t, "PROXY_LOCAL="+w.devHostAddr), "python3", "-c", pythonClient, port, w.devHostAddr)
	if want := w.devHostAddr + " local"; r.code != 0 || strings.TrimSpace(r.stdout) != want {
		t.Errorf("PROXY_LOCAL address: exit %d, stdout %q, want %q; stderr:\n%s", r.code, r.stdout, want, r.stderr)
	}
	if strings.Contains(w.srv.stderr.String(), target) {
		t.Errorf("the PROXY_LOCAL address went through the tunnel; serve log:\n%s", w.srv.stderr)
	}
	// Not local: the same address goes through the tunnel.
	w.transparent(t, false, w.env(t, "PROXY_LOCAL=none"), "python3", "-c", pythonClient, port, w.devHostAddr)
	if !strings.Contains(w.srv.stderr.String(), target) {
		t.Errorf("with PROXY_LOCAL=none the address did not go through the tunnel; serve log:\n%s", w.srv.stderr)
	}
}

func TestTransparentFailuresExit125(t *testing.T) {
	needTools(t, "setpriv", "unshare")
	if os.Geteuid() != 0 {
		t.Fatal("this test changes /dev/net/tun and sysctls and needs root (CI runs as root)")
	}
	srv := startDevServer(t)
	dir := publicDir(t)
	env := append(srv.clientEnv(t, "PROXY_CERT="+readFile(t, srv.env["PROXY_CERT"])), "HOME="+dir, "XDG_CONFIG_HOME="+dir, "XDG_STATE_HOME="+dir)
	asNobody := []string{"setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups", "--"}
	run := []string{binary, "run", "--transparent", "--", "true"}

	check := func(t *testing.T, r result, want string) {
		t.Helper()
		lines := strings.Split(strings.TrimSpace(r.stderr), "\n")
		if r.code != 125 || len(lines) != 1 || !strings.Contains(lines[0], want) {
			t.Errorf("exit %d, stderr %q; want 125 and one line with %q", r.code, r.stderr, want)
		}
	}
	t.Run("not root, /dev/net/tun mode 0600", func(t *testing.T) {
		setTUNMode(t, 0o600)
		check(t, runCommand(t, env, append(asNobody, run...)...),
			"run: transparent mode: /dev/net/tun is mode 0600, and only root may open it; make it usable by everyone, as most distributions ship it (sudo chmod 0666 /dev/net/tun), or run as root")
	})
	t.Run("user namespaces disabled", func(t *testing.T) {
		// user.max_user_namespaces = 0 in a user namespace of the test's own (the machine's
		// own may be read-only here, as in a container), and nobody in it.
		setTUNMode(t, 0o666)
		script := `echo 0 >/proc/sys/user/max_user_namespaces && exec "$@"`
		argv := append(append([]string{"sh", "-c", script, "sh"}, asNobody...), run...)
		check(t, runInUserNamespace(t, env, argv...),
			"run: transparent mode: user namespaces are disabled (user.max_user_namespaces = 0); enable them (sudo sysctl -w user.max_user_namespaces=15000), or run as root")
	})
	t.Run("no /dev/net/tun", func(t *testing.T) {
		hidden := []string{"unshare", "-m", "sh", "-c", `mount -t tmpfs tmpfs /dev/net && exec "$@"`, "sh"}
		check(t, runCommand(t, env, append(hidden, run...)...),
			"run: transparent mode: no /dev/net/tun (no such file or directory); load the TUN driver (sudo modprobe tun)")
	})
	t.Run("plain run is unaffected", func(t *testing.T) {
		setTUNMode(t, 0o600)
		if r := runCommand(t, env, append(asNobody, binary, "run", "--", "true")...); r.code != 0 {
			t.Errorf("plain run as nobody: exit %d, stderr %q", r.code, r.stderr)
		}
	})
}

// runInUserNamespace is runCommand in a new user namespace that maps the first 65536 uids
// and gids onto themselves, so that the command is root there and can set that namespace's
// sysctls.
func runInUserNamespace(t *testing.T, env []string, argv ...string) result {
	t.Helper()
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Env = env
	cmd.SysProcAttr = &syscall.SysProcAttr{
		Cloneflags:  syscall.CLONE_NEWUSER,
		UidMappings: []syscall.SysProcIDMap{{ContainerID: 0, HostID: 0, Size: 65536}},
		GidMappings: []syscall.SysProcIDMap{{ContainerID: 0, HostID: 0, Size: 65536}},

		GidMappingsEnableSetgroups: true,
	}
	var stdout, stderr strings.Builder
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	done := make(chan error, 1)
	if err := cmd.Start(); err != nil {
		t.Fatalf("start %v in a user namespace: %v", argv, err)
	}
	go func() { done <- cmd.Wait() }()
	select {
	case <-done:
	case <-time.After(2 * time.Minute):
		cmd.Process.Kill()
		<-done
		t.Fatalf("%v did not finish within 2 minutes", argv)
	}
	return result{code: cmd.ProcessState.ExitCode(), stdout: stdout.String(), stderr: stderr.String()}
}

func TestTransparentKeepsDirectorySignalsAndStatus(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Fatal("transparent mode as root is the case here (CI runs as root)")
	}
	srv := startDevServer(t)
	dir := t.TempDir()

	// The working directory and the exit status are the program's.
	cmd := exec.Command(binary, "run", "--transparent", "--", "sh", "-c", "pwd; exit 5")
	cmd.Dir, cmd.Env = dir, srv.clientEnv(t)
	out, err := cmd.Output()
	if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 5 || strings.TrimSpace(string(out)) != dir {
		t.Errorf("pwd; exit 5: %v, stdout %q; want status 5 and %s", err, out, dir)
	}

	// A signal sent to run reaches the program (run and the program share no terminal here).
	cmd = exec.Command(binary, "run", "--transparent", "--", "sh", "-c",
		`trap 'echo got TERM; exit 3' TERM; echo ready; while :; do sleep 0.05; done`)
	cmd.Env = srv.clientEnv(t)
	stdout := &syncbuf.Buffer{}
	cmd.Stdout, cmd.Stderr = stdout, stdout
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(20 * time.Second); !strings.Contains(stdout.String(), "ready"); time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			cmd.Process.Kill()
			cmd.Wait()
			t.Fatalf("the program did not start within 20s: %q", stdout)
		}
	}
	cmd.Process.Signal(syscall.SIGTERM)
	err = cmd.Wait()
	if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 3 || !strings.Contains(stdout.String(), "got TERM") {
		t.Errorf("after SIGTERM: %v, output %q; want status 3 and the program's trap", err, stdout)
	}
	// Killed by a signal: 128+N, as plain run.
	cmd = exec.Command(binary, "run", "--transparent", "--", "sh", "-c", "kill -KILL $$")
	cmd.Env = srv.clientEnv(t)
	if err := cmd.Run(); err == nil || err.(*exec.ExitError).ExitCode() != 128+9 {
		t.Errorf("killed by SIGKILL: %v, want status 137", err)
	}
}

// TestTransparentTerminal: in transparent mode the program still has run's terminal, and a
// Ctrl-C on it reaches the program once, as in plain run.
func TestTransparentTerminal(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Fatal("transparent mode as root is the case here (CI runs as root)")
	}
	srv := startDevServer(t)
	script := `tty -s && echo on-a-terminal; n=0; trap 'n=$((n+1))' INT; echo ready; while [ $n -eq 0 ]; do sleep 0.01; done; sleep 0.5; echo "count=$n"`
	cmd := exec.Command(binary, "run", "--transparent", "--", "sh", "-c", script)
	cmd.Env = srv.clientEnv(t)
	// run is in the terminal's foreground process group, as under an interactive shell.
	term := testpty.Start(t, cmd)
	term.WaitFor("ready")
	term.Write([]byte{3}) // Ctrl-C
	term.WaitFor("count=")
	term.WaitFor("\n")
	if out := term.Output(); !strings.Contains(out, "on-a-terminal") || !strings.Contains(out, "count=1") {
		t.Fatalf("want the terminal inside and one Ctrl-C: %q", out)
	}
	if err := cmd.Wait(); err != nil {
		t.Fatalf("run exited with %v after the program ended normally; output %q", err, term.Output())
	}
}
