//go:build linux

package e2e

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tessel/tessel-proxy/internal/syncbuf"
)

// Addresses from the benchmarking range 198.18.0.0/15, never seen outside this machine:
//
//	device ns  198.18.7.2 ──veth── 198.18.7.1  this machine (runs serve)
//	target ns  198.19.7.2 ──veth── 198.19.7.1  this machine
//
// The device namespace has a route to the proxy and nothing else, so the target is reachable
// from it only through the tunnel; the proxy reaches the target over its own veth.
const (
	devHostAddr    = "198.18.7.1"
	devAddr        = "198.18.7.2"
	targetHostAddr = "198.19.7.1"
	targetAddr     = "198.19.7.2"
)

func TestDeviceInNamespaceReachesTargetOnlyThroughTunnel(t *testing.T) {
	needTools(t, "ip", "curl", "python3")
	needRoot(t)
	suffix := fmt.Sprintf("%d", os.Getpid()%100000)
	devNS, targetNS := "tpx-dev-"+suffix, "tpx-tgt-"+suffix
	makeNamespace(t, devNS, "tpxd"+suffix, devHostAddr, devAddr)
	makeNamespace(t, targetNS, "tpxt"+suffix, targetHostAddr, targetAddr)

	url := startHTTPServerIn(t, targetNS, targetAddr)

	// The proxy on this machine, listening where the device can reach it, allowed to dial the
	// target's range.
	srv := startDevServer(t, "--listen", devHostAddr+":0", "--allow", "198.19.0.0/16")
	if srv.env["PROXY_HOST"] != devHostAddr {
		t.Fatalf("serve --dev printed PROXY_HOST=%q, want %s", srv.env["PROXY_HOST"], devHostAddr)
	}

	inDevice := []string{"ip", "netns", "exec", devNS}
	direct := runCommand(t, baseEnv(t), append(inDevice, "curl", "-sS", "--max-time", "5", url)...)
	if direct.code != 7 && direct.code != 28 { // curl: could not connect, or timed out
		t.Fatalf("curl in the device namespace without the tunnel: exit %d (want 7 or 28): %q %s", direct.code, direct.stdout, direct.stderr)
	}
	viaRun := runCommand(t, srv.clientEnv(t, "PROXY_LOCAL="),
		append(inDevice, binary, "run", "--", "curl", "-sS", "--fail", "--max-time", "20", url)...)
	if viaRun.code != 0 || viaRun.stdout != greeting {
		t.Fatalf("through the tunnel: exit %d, stdout %q, stderr:\n%s\nserve log:\n%s",
			viaRun.code, viaRun.stdout, viaRun.stderr, srv.stderr)
	}
}

// startHTTPServerIn starts python3's http.server in ns on addr:8080, serving a file with the
// greeting, and returns its URL.
func startHTTPServerIn(t *testing.T, ns, addr string) string {
	t.Helper()
	docroot := t.TempDir()
	os.Chmod(docroot, 0o755)
	if err := os.WriteFile(filepath.Join(docroot, "hello.txt"), []byte(greeting), 0o644); err != nil {
		t.Fatal(err)
	}
	httpd := exec.Command("ip", "netns", "exec", ns, "python3", "-m", "http.server",
		"--bind", addr, "--directory", docroot, "8080")
	httpdLog := &syncbuf.Buffer{}
	httpd.Stdout, httpd.Stderr = httpdLog, httpdLog
	if err := httpd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { httpd.Process.Kill(); httpd.Wait() })
	waitForListen(t, ns, addr+":8080", httpdLog)
	return "http://" + addr + ":8080/hello.txt"
}

// makeNamespace creates a namespace with one veth pair to this machine, addressed hostAddr/24
// here and nsAddr/24 inside, and no default route; it is deleted when the test ends.
func makeNamespace(t *testing.T, ns, veth, hostAddr, nsAddr string) {
	t.Helper()
	ip := func(args ...string) {
		t.Helper()
		if out, err := exec.Command("ip", args...).CombinedOutput(); err != nil {
			t.Fatalf("ip %s: %v\n%s", strings.Join(args, " "), err, out)
		}
	}
	ip("netns", "add", ns)
	t.Cleanup(func() {
		exec.Command("ip", "link", "del", veth+"h").Run()
		exec.Command("ip", "netns", "del", ns).Run()
	})
	ip("link", "add", veth+"h", "type", "veth", "peer", "name", veth+"n")
	ip("link", "set", veth+"n", "netns", ns)
	ip("addr", "add", hostAddr+"/24", "dev", veth+"h")
	ip("link", "set", veth+"h", "up")
	ip("-n", ns, "addr", "add", nsAddr+"/24", "dev", veth+"n")
	ip("-n", ns, "link", "set", veth+"n", "up")
	ip("-n", ns, "link", "set", "lo", "up")
}

// waitForListen waits until something in ns listens on addr.
func waitForListen(t *testing.T, ns, addr string, log *syncbuf.Buffer) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		out, _ := exec.Command("ip", "netns", "exec", ns, "ss", "-Hltn").Output()
		if strings.Contains(string(out), addr) {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("nothing listens on %s in %s after 20s; its output:\n%s", addr, ns, log)
}
