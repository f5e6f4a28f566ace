//go:build linux

package e2e

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/yamux"

	"github.com/tessel/tessel-proxy/internal/syncbuf"
	"github.com/tessel/tessel-proxy/internal/testnetns"
	"github.com/tessel/tessel-proxy/wire"
)

// TestDefaultServerRefusesSpecialPurposeRanges runs a default `serve` (no --dev, no
// --allow) in a network namespace of its own that has loopback only, and asks it, as a
// client speaking wire/spec.md, for a target in each range that a review found relayed, and
// in others the IANA registries call not globally reachable. Each must be refused by the
// policy (StatusDenied). A range wrongly allowed fails locally: the server's dial finds no
// route (StatusUnreachable) and nothing leaves the machine. Two controls show the test can
// tell the difference: a globally reachable address, and --allow opening a range.
func TestDefaultServerRefusesSpecialPurposeRanges(t *testing.T) {
	needRoot(t)
	needTools(t, "ip")
	ns := fmt.Sprintf("tpx-deny-%d", os.Getpid())
	if out, err := exec.Command("ip", "netns", "add", ns).CombinedOutput(); err != nil {
		t.Fatalf("ip netns add: %v\n%s", err, out)
	}
	t.Cleanup(func() { exec.Command("ip", "netns", "del", ns).Run() })
	if out, err := exec.Command("ip", "-n", ns, "link", "set", "lo", "up").CombinedOutput(); err != nil {
		t.Fatalf("ip link set lo up: %v\n%s", err, out)
	}

	const token = "e2e-policy-token"
	dir := t.TempDir()
	start := func(port int, args ...string) *x509.CertPool {
		cert, key := filepath.Join(dir, fmt.Sprint(port, ".pem")), filepath.Join(dir, fmt.Sprint(port, ".key"))
		argv := append([]string{"netns", "exec", ns, binary, "serve", "--listen", fmt.Sprint("127.0.0.1:", port),
			"--self-signed", "--cert", cert, "--key", key, "--log-level", "debug"}, args...)
		cmd := exec.Command("ip", argv...)
		cmd.Env = append(baseEnv(t), "AUTH_HARDCODED="+token)
		logs := &syncbuf.Buffer{}
		cmd.Stdout, cmd.Stderr = logs, logs
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
		// serve binds before it generates the certificate; "listening" comes after both.
		waitFor(t, func() bool { return strings.Contains(logs.String(), "msg=listening") },
			"serve in %s to say it is listening; its output:\n%s", ns, logs)
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM([]byte(readFile(t, cert))) {
			t.Fatalf("no certificate in %s", cert)
		}
		return pool
	}

	deny := []string{
		// Found relayed by a default server (in a review).
		"192.0.0.1", "198.18.0.1", "198.19.255.254", "192.0.2.1", "198.51.100.1", "203.0.113.1", "2001:db8::1",
		// Others not globally reachable, and what the old list already refused.
		"192.0.0.8", "192.88.99.1", "240.0.0.1", "2001:2::1", "3fff::1", "100::1", "64:ff9b::c000:201",
		"127.0.0.1", "10.0.0.1", "169.254.169.254", "::1",
	}
	roots := start(8443)
	sess := nsTunnel(t, ns, "127.0.0.1:8443", roots, token)
	for _, host := range deny {
		reply := nsOpen(t, sess, host, 80)
		if reply.Status != wire.StatusDenied {
			t.Errorf("%s: %v %q, want denied by policy", host, reply.Status, reply.Message)
		}
	}
	// Globally reachable: the server dials it, and finds no route in its namespace.
	if reply := nsOpen(t, sess, "192.0.0.9", 80); reply.Status != wire.StatusUnreachable {
		t.Errorf("192.0.0.9 (globally reachable): %v %q, want unreachable from the namespace", reply.Status, reply.Message)
	}

	// --allow still opens any range.
	roots = start(8444, "--allow", "198.18.0.0/15", "--allow", "2001:db8::/32")
	sess = nsTunnel(t, ns, "127.0.0.1:8444", roots, token)
	for _, host := range []string{"198.18.0.1", "2001:db8::1"} {
		if reply := nsOpen(t, sess, host, 80); reply.Status != wire.StatusUnreachable {
			t.Errorf("%s with --allow: %v %q, want unreachable from the namespace", host, reply.Status, reply.Message)
		}
	}
	if reply := nsOpen(t, sess, "192.0.2.1", 80); reply.Status != wire.StatusDenied {
		t.Errorf("192.0.2.1, not in --allow: %v %q, want denied", reply.Status, reply.Message)
	}
}

// nsTunnel connects from inside ns to addr, authenticates and starts a yamux session.
func nsTunnel(t *testing.T, ns, addr string, roots *x509.CertPool, token string) *yamux.Session {
	t.Helper()
	// The socket stays in ns.
	var raw net.Conn
	err := testnetns.Do(ns, func() (err error) {
		raw, err = net.DialTimeout("tcp", addr, 10*time.Second)
		return err
	})
	if err != nil {
		t.Fatalf("connect to %s in %s: %v", addr, ns, err)
	}
	host, _, _ := strings.Cut(addr, ":")
	conn := tls.Client(raw, &tls.Config{RootCAs: roots, ServerName: host, MinVersion: tls.VersionTLS12})
	t.Cleanup(func() { conn.Close() })
	_ = conn.SetDeadline(time.Now().Add(20 * time.Second))
	if err := wire.WriteHello(conn, wire.Hello{Version: wire.Version, Token: token}); err != nil {
		t.Fatal(err)
	}
	reply, err := wire.ReadReply(conn)
	if err != nil || reply.Status != wire.StatusOK {
		t.Fatalf("handshake: %v %v", reply.Err(), err)
	}
	_ = conn.SetDeadline(time.Time{})
	sess, err := yamux.Client(conn, wire.MuxConfig())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sess.Close() })
	return sess
}

// nsOpen asks for host:port on sess and returns the server's reply.
func nsOpen(t *testing.T, sess *yamux.Session, host string, port uint16) wire.Reply {
	t.Helper()
	stream, err := sess.OpenStream()
	if err != nil {
		t.Fatal(err)
	}
	defer stream.Close()
	req, err := wire.AppendStreamRequest(nil, wire.StreamRequest{Version: wire.Version, Kind: wire.KindNet, Host: host, Port: port})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := stream.Write(req); err != nil {
		t.Fatal(err)
	}
	_ = stream.SetReadDeadline(time.Now().Add(20 * time.Second))
	reply, err := wire.ReadReply(stream)
	if err != nil {
		t.Fatalf("%s: read reply: %v", host, err)
	}
	return reply
}
