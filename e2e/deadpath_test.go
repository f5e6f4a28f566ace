//go:build linux

package e2e

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/tessel/tessel-proxy/internal/syncbuf"
	"github.com/tessel/tessel-proxy/wire"
)

// slowTargetScript serves /hello.txt (the greeting, argv[3]) and /slow, which announces a
// gigabyte and then trickles it out 1 KiB at a time, so that a download of it is still
// running whenever the test needs it to be.
const slowTargetScript = `
import http.server, sys, time

addr, port, greeting = sys.argv[1], int(sys.argv[2]), sys.argv[3].encode()

class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_GET(self):
        if self.path == "/hello.txt":
            self.send_response(200)
            self.send_header("Content-Length", str(len(greeting)))
            self.send_header("Connection", "close")
            self.end_headers()
            self.wfile.write(greeting)
            return
        if self.path == "/slow":
            self.send_response(200)
            self.send_header("Content-Length", str(1 << 30))
            self.send_header("Connection", "close")
            self.end_headers()
            chunk = b"x" * 1024
            try:
                while True:
                    self.wfile.write(chunk)
                    self.wfile.flush()
                    time.sleep(0.05)
            except OSError:
                return
        self.send_error(404)

class Server(http.server.ThreadingHTTPServer):
    daemon_threads = True

Server((addr, port), Handler).serve_forever()
`

// deadPathScript runs on the device under `run`: $1 is a directory shared with the test, $2
// the target's base URL, $3 curl's time limit for the stalled download in seconds.
//
//  1. fetch the small file (must work);
//  2. start the endless download into $1/slow.part (the test blackholes the path once bytes
//     arrive);
//  3. record curl's exit status and how long it ran in $1/stalled;
//  4. wait for the test to create $1/back;
//  5. fetch the small file again.
//
// Every wait is bounded, so nothing outlives a test that died.
const deadPathScript = `
d=$1 url=$2 limit=$3
curl -sS --fail --max-time 20 -o "$d/first" "$url/hello.txt" || exit 10
start=$(date +%s%N)
curl -sS --max-time "$limit" -o "$d/slow.part" "$url/slow"
code=$?
end=$(date +%s%N)
echo "$code $(( (end - start) / 1000000 ))" > "$d/stalled.tmp"
mv "$d/stalled.tmp" "$d/stalled"
i=0
while [ ! -e "$d/back" ]; do
	i=$((i + 1))
	[ "$i" -gt 1200 ] && exit 11
	sleep 0.1
done
curl -sS --fail --max-time 20 -o "$d/second" "$url/hello.txt" || exit 12
`

// TestStalledDownloadFailsWhenPathDiesAndNextDialReconnects is a laptop that sleeps, or a
// NAT that forgets the flow, in the middle of a download: the path between device and
// proxy starts dropping every packet without a word (no RST, no ICMP). Keepalive must end
// the tunnel within a bounded time, so that the stalled download fails rather than hangs,
// and once the path is back the next connection must get through on a new tunnel.
//
//	device ns  198.18.12.2 ──veth── 198.18.12.1  router ns  198.18.11.2 ──veth── 198.18.11.1  this machine (runs serve)
//	target ns  198.19.11.2 ──veth── 198.19.11.1  this machine
//
// The router forwards between device and proxy; the blackhole is a zero-length packet queue
// (pfifo limit 0) on both of its links, so that every packet it forwards either way is
// dropped. Dropping in a router rather than at an end matters: a kernel whose own packets
// are dropped as it sends them gives up on the connection by itself after a few seconds,
// while over a real dead path only the tunnel's keepalive notices.
func TestStalledDownloadFailsWhenPathDiesAndNextDialReconnects(t *testing.T) {
	needTools(t, "ip", "tc", "curl", "python3")
	needRoot(t)
	const (
		hostAddr       = "198.18.11.1"
		routerHostSide = "198.18.11.2"
		routerDevSide  = "198.18.12.1"
		deviceAddr     = "198.18.12.2"
		deviceNet      = "198.18.12.0/24"
		tgtHost        = "198.19.11.1"
		tgtAddr        = "198.19.11.2"
	)
	// A dead tunnel must be noticed within a ping interval plus the ping's time limit; the
	// rest is slack for a slow or busy machine.
	bound := wire.KeepaliveInterval + wire.WriteTimeout + 35*time.Second
	curlLimit := bound + 20*time.Second

	suffix := fmt.Sprintf("%d", (os.Getpid()+2)%100000)
	devNS, routerNS, targetNS := "tpx-dpd-"+suffix, "tpx-dpr-"+suffix, "tpx-dpt-"+suffix
	hostLink, devLink := "tpxp"+suffix, "tpxr"+suffix
	makeNamespace(t, routerNS, hostLink, hostAddr, routerHostSide)
	makeNamespace(t, targetNS, "tpxq"+suffix, tgtHost, tgtAddr)
	ip := func(args ...string) {
		t.Helper()
		if out, err := exec.Command("ip", args...).CombinedOutput(); err != nil {
			t.Fatalf("ip %s: %v\n%s", strings.Join(args, " "), err, out)
		}
	}
	ip("netns", "add", devNS)
	t.Cleanup(func() { exec.Command("ip", "netns", "del", devNS).Run() })
	ip("link", "add", devLink+"d", "type", "veth", "peer", "name", devLink+"r")
	ip("link", "set", devLink+"d", "netns", devNS)
	ip("link", "set", devLink+"r", "netns", routerNS)
	ip("-n", routerNS, "addr", "add", routerDevSide+"/24", "dev", devLink+"r")
	ip("-n", routerNS, "link", "set", devLink+"r", "up")
	ip("-n", devNS, "addr", "add", deviceAddr+"/24", "dev", devLink+"d")
	ip("-n", devNS, "link", "set", devLink+"d", "up")
	ip("-n", devNS, "link", "set", "lo", "up")
	// The device reaches the proxy through the router, and nothing else.
	ip("-n", devNS, "route", "add", hostAddr+"/32", "via", routerDevSide)
	if out, err := exec.Command("ip", "netns", "exec", routerNS, "sh", "-c",
		"echo 1 > /proc/sys/net/ipv4/ip_forward").CombinedOutput(); err != nil {
		t.Fatalf("enable forwarding in %s: %v\n%s", routerNS, err, out)
	}
	ip("route", "replace", deviceNet, "via", routerHostSide)
	t.Cleanup(func() { exec.Command("ip", "route", "del", deviceNet, "via", routerHostSide).Run() })

	// The target: python3 in its namespace.
	script := filepath.Join(t.TempDir(), "target.py")
	if err := writeFile(script, slowTargetScript); err != nil {
		t.Fatal(err)
	}
	httpd := exec.Command("ip", "netns", "exec", targetNS, "python3", script, tgtAddr, "8080", greeting)
	httpdLog := &syncbuf.Buffer{}
	httpd.Stdout, httpd.Stderr = httpdLog, httpdLog
	if err := httpd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { httpd.Process.Kill(); httpd.Wait() })
	waitForListen(t, targetNS, tgtAddr+":8080", httpdLog)
	url := "http://" + tgtAddr + ":8080"

	// A short grace period: should the test fail while the path is dead, the stalled stream
	// must not hold up the server's shutdown.
	srv := startDevServer(t, "--listen", hostAddr+":0", "--allow", "198.19.0.0/16", "--shutdown-timeout", "3s")
	if srv.env["PROXY_HOST"] != hostAddr {
		t.Fatalf("serve --dev printed PROXY_HOST=%q, want %s", srv.env["PROXY_HOST"], hostAddr)
	}

	// The blackhole in the router, and its removal (the router's links go away with its
	// namespace when the test ends).
	blackhole := [][]string{
		{"tc", "-n", routerNS, "qdisc", "add", "dev", hostLink + "n", "root", "pfifo", "limit", "0"},
		{"tc", "-n", routerNS, "qdisc", "add", "dev", devLink + "r", "root", "pfifo", "limit", "0"},
	}
	restore := [][]string{
		{"tc", "-n", routerNS, "qdisc", "del", "dev", hostLink + "n", "root"},
		{"tc", "-n", routerNS, "qdisc", "del", "dev", devLink + "r", "root"},
	}
	runAll := func(cmds [][]string) {
		t.Helper()
		for _, argv := range cmds {
			if out, err := exec.Command(argv[0], argv[1:]...).CombinedOutput(); err != nil {
				t.Fatalf("%s: %v\n%s", strings.Join(argv, " "), err, out)
			}
		}
	}

	// The device: run, with the script above as its program.
	shared := t.TempDir()
	run := exec.Command("ip", "netns", "exec", devNS, binary, "run", "--",
		"sh", "-c", deadPathScript, "sh", shared, url, strconv.Itoa(int(curlLimit.Seconds())))
	run.Env = srv.clientEnv(t, "PROXY_LOCAL=", "_PROXY_DBG=1")
	run.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	runOut, runErr := &syncbuf.Buffer{}, &syncbuf.Buffer{}
	run.Stdout, run.Stderr = runOut, runErr
	if err := run.Start(); err != nil {
		t.Fatal(err)
	}
	runDone := make(chan struct{})
	go func() { run.Wait(); close(runDone) }()
	t.Cleanup(func() {
		select {
		case <-runDone:
		default:
			syscall.Kill(-run.Process.Pid, syscall.SIGKILL)
			<-runDone
		}
	})
	logs := func() string {
		return fmt.Sprintf("run stdout:\n%s\nrun stderr:\n%s\nserve log:\n%s\ntarget log:\n%s",
			runOut, runErr, srv.stderr, httpdLog)
	}
	// waitFor polls until cond holds, failing after limit or when run exits first.
	waitFor := func(what string, limit time.Duration, cond func() bool) {
		t.Helper()
		deadline := time.Now().Add(limit)
		for !cond() {
			select {
			case <-runDone:
				if cond() {
					return
				}
				t.Fatalf("run exited (%v) while waiting for %s\n%s", run.ProcessState, what, logs())
			default:
			}
			if time.Now().After(deadline) {
				t.Fatalf("no %s within %s\n%s", what, limit, logs())
			}
			time.Sleep(50 * time.Millisecond)
		}
	}

	// (1) and (2): the first fetch worked and the download is flowing.
	waitFor("bytes of the slow download", 30*time.Second, func() bool {
		fi, err := os.Stat(filepath.Join(shared, "slow.part"))
		return err == nil && fi.Size() >= 4096
	})
	if got := readFile(t, filepath.Join(shared, "first")); got != greeting {
		t.Fatalf("first fetch got %q, want %q", got, greeting)
	}

	// The path dies.
	runAll(blackhole)
	died := time.Now()

	// (3): the download ends, with an error, in bounded time.
	stalled := filepath.Join(shared, "stalled")
	waitFor("end of the stalled download", curlLimit+15*time.Second, func() bool {
		_, err := os.Stat(stalled)
		return err == nil
	})
	detected := time.Since(died)
	var code, tookMS int
	if _, err := fmt.Sscan(readFile(t, stalled), &code, &tookMS); err != nil {
		t.Fatalf("read %s: %v", stalled, err)
	}
	t.Logf("stalled download: curl exit %d after %d ms; %s after the path died",
		code, tookMS, detected.Round(100*time.Millisecond))
	if code == 0 {
		t.Fatalf("the download across a dead path ended with exit 0, as if complete\n%s", logs())
	}
	if code == 28 || detected > bound {
		t.Fatalf("the download across a dead path ended %s after the path died (curl exit %d), want within %s (keepalive %s + %s, plus slack)\n%s",
			detected.Round(100*time.Millisecond), code, bound, wire.KeepaliveInterval, wire.WriteTimeout, logs())
	}

	// (4) and (5): the path is back, and the next fetch gets through on a new tunnel.
	opened := strings.Count(srv.stderr.String(), "tunnel open")
	runAll(restore)
	if err := writeFile(filepath.Join(shared, "back"), ""); err != nil {
		t.Fatal(err)
	}
	select {
	case <-runDone:
	case <-time.After(40 * time.Second):
		t.Fatalf("run did not finish within 40s of the path coming back\n%s", logs())
	}
	if c := run.ProcessState.ExitCode(); c != 0 {
		t.Fatalf("run exited %d (10: first fetch failed, 11: never told the path was back, 12: fetch after the path came back failed)\n%s", c, logs())
	}
	if got := readFile(t, filepath.Join(shared, "second")); got != greeting {
		t.Fatalf("fetch after the path came back got %q, want %q", got, greeting)
	}
	if now := strings.Count(srv.stderr.String(), "tunnel open"); now <= opened {
		t.Fatalf("serve saw %d tunnel(s) open before the path came back and %d after: the last fetch did not use a new tunnel\n%s", opened, now, logs())
	}
}
