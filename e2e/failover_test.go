//go:build linux

package e2e

import (
	"bufio"
	"fmt"
	"math/rand/v2"
	"net"
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

// keepaliveBound is how soon a client must notice a dead tunnel: a ping interval plus the
// ping's time limit, plus slack for a slow or busy machine.
const keepaliveBound = wire.KeepaliveInterval + wire.WriteTimeout + 35*time.Second

// requestLoopScript runs under `run`: it fetches argv[1] (through the HTTP proxy `run` set)
// every 50 ms until the file argv[3] exists, and writes one line per request to argv[2]:
// the time it ended (Unix seconds), then "ok" or "err" and the reason. Each request is a new
// connection to the front, so a new stream, and a new tunnel once the old one is gone.
const requestLoopScript = `
import os, sys, time, urllib.request
url, log, stop = sys.argv[1], sys.argv[2], sys.argv[3]
with open(log, "a", buffering=1) as f:
    while not os.path.exists(stop):
        try:
            body = urllib.request.urlopen(url, timeout=10).read()
            f.write("%.3f ok %d\n" % (time.time(), len(body)))
        except Exception as e:
            f.write("%.3f err %s\n" % (time.time(), str(e).replace("\n", " ")))
        time.sleep(0.05)
`

// requestLog is what requestLoopScript wrote.
type requestLog struct {
	at  time.Time
	ok  bool
	why string
}

func readRequestLog(t *testing.T, path string) []requestLog {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		if os.IsNotExist(err) {
			return nil
		}
		t.Fatal(err)
	}
	defer f.Close()
	var out []requestLog
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.SplitN(sc.Text(), " ", 3)
		if len(fields) < 2 {
			continue // a line being written
		}
		sec, err := strconv.ParseFloat(fields[0], 64)
		if err != nil {
			continue
		}
		r := requestLog{at: time.Unix(0, int64(sec*1e9)), ok: fields[1] == "ok"}
		if len(fields) == 3 {
			r.why = fields[2]
		}
		out = append(out, r)
	}
	return out
}

// freeLoopbackPort returns a TCP port on 127.0.0.1 that nothing listens on at the moment.
func freeLoopbackPort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// startHAProxy runs HAProxy in TCP mode on 127.0.0.1:port in front of backends, with the
// configuration a README reader would use (health checks, redispatch on a failed connect),
// and returns its log.
func startHAProxy(t *testing.T, port int, backends []string) *syncbuf.Buffer {
	t.Helper()
	needTools(t, "haproxy")
	var servers strings.Builder
	for i, b := range backends {
		fmt.Fprintf(&servers, "  server s%d %s check inter 1s fall 2 rise 1\n", i+1, b)
	}
	cfg := fmt.Sprintf(`global
  maxconn 1000
defaults
  mode tcp
  timeout connect 2s
  timeout client 1h
  timeout server 1h
  retries 2
  option redispatch
frontend tunnels
  bind 127.0.0.1:%d
  default_backend proxies
backend proxies
  balance leastconn
%s`, port, servers.String())
	path := filepath.Join(t.TempDir(), "haproxy.cfg")
	if err := writeFile(path, cfg); err != nil {
		t.Fatal(err)
	}
	log := &syncbuf.Buffer{}
	cmd := exec.Command("haproxy", "-db", "-f", path)
	cmd.Stdout, cmd.Stderr = log, log
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	deadline := time.Now().Add(20 * time.Second)
	for {
		c, err := net.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", port))
		if err == nil {
			c.Close()
			return log
		}
		if time.Now().After(deadline) {
			t.Fatalf("haproxy does not listen on port %d after 20s; its output:\n%s", port, log)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// kill9 ends a server at once, the way a crash or the OOM killer does: no GoAway, no
// graceful close.
func (s *devServer) kill9() {
	s.cmd.Process.Signal(syscall.SIGKILL)
	<-s.done
}

// randomToken is a token for servers that must accept the same one.
func randomToken() string { return fmt.Sprintf("tok-%016x%016x", rand.Uint64(), rand.Uint64()) }

// TestFailoverBehindHAProxy: two servers behind an L4 load balancer, a program under `run`
// that keeps making requests, and the server that holds the tunnel dies (kill -9). Requests
// may fail for a moment; new connections must succeed again, through the other server,
// within the keepalive bound.
func TestFailoverBehindHAProxy(t *testing.T) {
	t.Parallel()
	needTools(t, "python3", "haproxy")
	dir, token := t.TempDir(), randomToken()
	auth := []string{"AUTH_HARDCODED=" + token}
	// One certificate and one token for both, as a deployment behind a balancer has.
	s1 := startDevServerWith(t, nil, dir, auth, "--allow", "127.0.0.0/8")
	s2 := startDevServerWith(t, nil, dir, auth, "--allow", "127.0.0.0/8")
	servers := []*devServer{s1, s2}
	lbPort := freeLoopbackPort(t)
	lbLog := startHAProxy(t, lbPort, []string{"127.0.0.1:" + s1.env["PROXY_PORT"], "127.0.0.1:" + s2.env["PROXY_PORT"]})
	target := greetingServer(t, false)

	shared := t.TempDir()
	reqLog, stop := filepath.Join(shared, "requests"), filepath.Join(shared, "stop")
	script := filepath.Join(shared, "loop.py")
	if err := writeFile(script, requestLoopScript); err != nil {
		t.Fatal(err)
	}
	run := exec.Command(binary, "run", "--", "python3", script, target.URL+"/hello", reqLog, stop)
	run.Env = s1.clientEnv(t, "PROXY_PORT="+strconv.Itoa(lbPort), "_PROXY_DBG=1")
	runOut := &syncbuf.Buffer{}
	run.Stdout, run.Stderr = runOut, runOut
	if err := run.Start(); err != nil {
		t.Fatal(err)
	}
	runDone := make(chan struct{})
	go func() { run.Wait(); close(runDone) }()
	t.Cleanup(func() {
		writeFile(stop, "")
		select {
		case <-runDone:
		case <-time.After(15 * time.Second):
			run.Process.Kill()
			<-runDone
		}
	})
	logs := func() string {
		return fmt.Sprintf("run output:\n%s\nserve 1 log:\n%s\nserve 2 log:\n%s\nhaproxy log:\n%s\nrequests:\n%s",
			runOut, s1.stderr, s2.stderr, lbLog, readFileIfAny(reqLog))
	}
	succeeded := func(after time.Time) int {
		n := 0
		for _, r := range readRequestLog(t, reqLog) {
			if r.ok && r.at.After(after) {
				n++
			}
		}
		return n
	}
	waitUntil := func(what string, limit time.Duration, cond func() bool) {
		t.Helper()
		deadline := time.Now().Add(limit)
		for !cond() {
			select {
			case <-runDone:
				t.Fatalf("run exited (%v) while waiting for %s\n%s", run.ProcessState, what, logs())
			default:
			}
			if time.Now().After(deadline) {
				t.Fatalf("no %s within %s\n%s", what, limit, logs())
			}
			time.Sleep(20 * time.Millisecond)
		}
	}

	waitUntil("20 requests through the balancer", 30*time.Second, func() bool { return succeeded(time.Time{}) >= 20 })
	var holder, other *devServer
	for i, s := range servers {
		if strings.Contains(s.stderr.String(), "tunnel open") {
			holder, other = s, servers[1-i]
		}
	}
	if holder == nil {
		t.Fatalf("neither server logged a tunnel\n%s", logs())
	}
	if strings.Contains(other.stderr.String(), "tunnel open") {
		t.Fatalf("both servers hold a tunnel before the failure: the client should keep one\n%s", logs())
	}

	holder.kill9()
	killed := time.Now()
	waitUntil("5 requests after the kill", keepaliveBound+10*time.Second, func() bool { return succeeded(killed) >= 5 })

	var lastOK, firstOK time.Time
	failed := 0
	for _, r := range readRequestLog(t, reqLog) {
		switch {
		case r.at.Before(killed) && r.ok:
			lastOK = r.at
		case !r.at.Before(killed) && !r.ok:
			failed++
		case !r.at.Before(killed) && r.ok && firstOK.IsZero():
			firstOK = r.at
		}
	}
	gap := firstOK.Sub(killed)
	t.Logf("kill -9 of the server holding the tunnel: %d request(s) failed; first success %s after the kill (last success %s before it)",
		failed, gap.Round(time.Millisecond), killed.Sub(lastOK).Round(time.Millisecond))
	if gap > keepaliveBound {
		t.Fatalf("requests succeeded again %s after the kill, want within %s\n%s", gap, keepaliveBound, logs())
	}
	if !strings.Contains(other.stderr.String(), "tunnel open") {
		t.Fatalf("the surviving server saw no tunnel: the requests after the kill did not go through it\n%s", logs())
	}
}

func readFileIfAny(path string) string {
	b, _ := os.ReadFile(path)
	return string(b)
}

// downloadRun is a program under `run` that runs deadPathScript: a fetch, an endless
// download that the test breaks, and a fetch once the test says the way is back.
type downloadRun struct {
	t      *testing.T
	shared string
	cmd    *exec.Cmd
	done   chan struct{}
	out    *syncbuf.Buffer
	logs   func() string
}

// startDownloadRun starts deadPathScript under `run` (prefix: for example `ip netns exec NS`)
// with env, against the slow target at url.
func startDownloadRun(t *testing.T, prefix []string, env []string, url string, logs func() string) *downloadRun {
	t.Helper()
	curlLimit := keepaliveBound + 20*time.Second
	d := &downloadRun{t: t, shared: t.TempDir(), done: make(chan struct{}), out: &syncbuf.Buffer{}}
	argv := append(append([]string{}, prefix...), binary, "run", "--",
		"sh", "-c", deadPathScript, "sh", d.shared, url, strconv.Itoa(int(curlLimit.Seconds())))
	d.cmd = exec.Command(argv[0], argv[1:]...)
	d.cmd.Env = env
	d.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	d.cmd.Stdout, d.cmd.Stderr = d.out, d.out
	d.logs = func() string { return fmt.Sprintf("run output:\n%s\n%s", d.out, logs()) }
	if err := d.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { d.cmd.Wait(); close(d.done) }()
	t.Cleanup(func() {
		select {
		case <-d.done:
		default:
			syscall.Kill(-d.cmd.Process.Pid, syscall.SIGKILL)
			<-d.done
		}
	})
	return d
}

// waitFor polls until cond holds, failing after limit or when run exits first.
func (d *downloadRun) waitFor(what string, limit time.Duration, cond func() bool) {
	d.t.Helper()
	deadline := time.Now().Add(limit)
	for !cond() {
		select {
		case <-d.done:
			if cond() {
				return
			}
			d.t.Fatalf("run exited (%v) while waiting for %s\n%s", d.cmd.ProcessState, what, d.logs())
		default:
		}
		if time.Now().After(deadline) {
			d.t.Fatalf("no %s within %s\n%s", what, limit, d.logs())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// waitFlowing waits until the first fetch worked and the download is under way.
func (d *downloadRun) waitFlowing() {
	d.t.Helper()
	d.waitFor("bytes of the slow download", 30*time.Second, func() bool {
		fi, err := os.Stat(filepath.Join(d.shared, "slow.part"))
		return err == nil && fi.Size() >= 4096
	})
	if got := readFile(d.t, filepath.Join(d.shared, "first")); got != greeting {
		d.t.Fatalf("first fetch got %q, want %q", got, greeting)
	}
}

// waitBroken waits for the download to end after the fault at broke, and fails the test
// unless it ended with an error within the keepalive bound. It returns how long it took.
func (d *downloadRun) waitBroken(broke time.Time) time.Duration {
	d.t.Helper()
	stalled := filepath.Join(d.shared, "stalled")
	d.waitFor("end of the broken download", keepaliveBound+20*time.Second, func() bool {
		_, err := os.Stat(stalled)
		return err == nil
	})
	took := time.Since(broke)
	var code, ms int
	if _, err := fmt.Sscan(readFile(d.t, stalled), &code, &ms); err != nil {
		d.t.Fatalf("read %s: %v", stalled, err)
	}
	d.t.Logf("broken download: curl exit %d, %s after the fault", code, took.Round(time.Millisecond))
	if code == 0 {
		d.t.Fatalf("the broken download ended with exit 0, as if complete\n%s", d.logs())
	}
	if code == 28 || took > keepaliveBound {
		d.t.Fatalf("the broken download ended %s after the fault (curl exit %d), want within %s\n%s",
			took.Round(time.Millisecond), code, keepaliveBound, d.logs())
	}
	return took
}

// finish tells the script the way is back and checks that its last fetch worked.
func (d *downloadRun) finish() {
	d.t.Helper()
	if err := writeFile(filepath.Join(d.shared, "back"), ""); err != nil {
		d.t.Fatal(err)
	}
	select {
	case <-d.done:
	case <-time.After(40 * time.Second):
		d.t.Fatalf("run did not finish within 40s of the way coming back\n%s", d.logs())
	}
	if c := d.cmd.ProcessState.ExitCode(); c != 0 {
		d.t.Fatalf("run exited %d (10: first fetch failed, 11: never told the way was back, 12: fetch after it came back failed)\n%s", c, d.logs())
	}
	if got := readFile(d.t, filepath.Join(d.shared, "second")); got != greeting {
		d.t.Fatalf("fetch after the way came back got %q, want %q", got, greeting)
	}
}

// startSlowTarget runs slowTargetScript on 127.0.0.1 and returns its base URL.
func startSlowTarget(t *testing.T) (string, *syncbuf.Buffer) {
	t.Helper()
	needTools(t, "python3")
	script := filepath.Join(t.TempDir(), "target.py")
	if err := writeFile(script, slowTargetScript); err != nil {
		t.Fatal(err)
	}
	port := freeLoopbackPort(t)
	cmd := exec.Command("python3", script, "127.0.0.1", strconv.Itoa(port), greeting)
	log := &syncbuf.Buffer{}
	cmd.Stdout, cmd.Stderr = log, log
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	deadline := time.Now().Add(20 * time.Second)
	for {
		c, err := net.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", port))
		if err == nil {
			c.Close()
			return fmt.Sprintf("http://127.0.0.1:%d", port), log
		}
		if time.Now().After(deadline) {
			t.Fatalf("the slow target does not listen after 20s; its output:\n%s", log)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestServerKilledMidTransferThenNextConnectionWorks: the server dies (kill -9) during a
// download. The download must end with an error, not hang and not pass for complete, within
// the keepalive bound; once a server listens again, the next connection gets through.
func TestServerKilledMidTransferThenNextConnectionWorks(t *testing.T) {
	t.Parallel()
	needTools(t, "curl", "python3")
	url, targetLog := startSlowTarget(t)
	dir, token := t.TempDir(), randomToken()
	auth := []string{"AUTH_HARDCODED=" + token}
	srv := startDevServerWith(t, nil, dir, auth, "--allow", "127.0.0.0/8")
	var again *devServer
	d := startDownloadRun(t, nil, srv.clientEnv(t, "_PROXY_DBG=1"), url, func() string {
		s := fmt.Sprintf("serve log:\n%s\ntarget log:\n%s", srv.stderr, targetLog)
		if again != nil {
			s += fmt.Sprintf("\nrestarted serve log:\n%s", again.stderr)
		}
		return s
	})
	d.waitFlowing()

	srv.kill9()
	d.waitBroken(time.Now())

	again = startDevServerWith(t, nil, dir, auth, "--allow", "127.0.0.0/8", "--listen", "127.0.0.1:"+srv.env["PROXY_PORT"])
	d.finish()
	if !strings.Contains(again.stderr.String(), "tunnel open") {
		t.Fatalf("the restarted server saw no tunnel\n%s", d.logs())
	}
}

// TestLinkDownUnderLiveTunnel takes the device's network link down (ip link set down in its
// namespace) during a download: the tunnel's TCP connection gets no error of its own for
// minutes, so keepalive must end it within its bound. Once the link is up again the next
// connection gets through on a new tunnel.
//
//	device ns  198.18.N.2 ──veth── 198.18.N.1  this machine (serve; the target on its loopback)
func TestLinkDownUnderLiveTunnel(t *testing.T) {
	t.Parallel()
	needTools(t, "ip", "curl", "python3")
	needRoot(t)
	url, targetLog := startSlowTarget(t)
	// A /24 of its own in 198.18.0.0/15, away from the fixed ones other tests use.
	subnet := 64 + rand.IntN(160)
	hostAddr, devAddr := fmt.Sprintf("198.18.%d.1", subnet), fmt.Sprintf("198.18.%d.2", subnet)
	// Named after this process (see ownerAlive), with a prefix of this test's own.
	suffix := fmt.Sprintf("%d", (os.Getpid()+3)%100000)
	devNS, veth := "tpx-ld-"+suffix, "tpxl"+suffix
	makeNamespace(t, devNS, veth, hostAddr, devAddr)

	srv := startDevServer(t, "--listen", hostAddr+":0", "--allow", "127.0.0.0/8", "--shutdown-timeout", "3s")
	d := startDownloadRun(t, []string{"ip", "netns", "exec", devNS}, srv.clientEnv(t, "_PROXY_DBG=1"), url, func() string {
		return fmt.Sprintf("serve log:\n%s\ntarget log:\n%s", srv.stderr, targetLog)
	})
	d.waitFlowing()

	link := func(state string) {
		t.Helper()
		if out, err := exec.Command("ip", "-n", devNS, "link", "set", veth+"n", state).CombinedOutput(); err != nil {
			t.Fatalf("ip -n %s link set %sn %s: %v\n%s", devNS, veth, state, err, out)
		}
	}
	link("down")
	down := time.Now()
	d.waitBroken(down)
	// The server's side of the tunnel is as dead, and must be let go of as soon: a device
	// that never comes back must not hold the server's tunnel, its goroutines and its
	// target connections until TCP gives up on its own (many minutes).
	d.waitFor("tunnel closed in serve's log", keepaliveBound-time.Since(down), func() bool {
		return strings.Contains(srv.stderr.String(), "tunnel closed")
	})
	t.Logf("serve closed its side of the tunnel %s after the link went down", time.Since(down).Round(time.Millisecond))

	opened := strings.Count(srv.stderr.String(), "tunnel open")
	link("up")
	d.finish()
	if now := strings.Count(srv.stderr.String(), "tunnel open"); now <= opened {
		t.Fatalf("serve saw %d tunnel(s) open before the link came back and %d after: the last fetch did not use a new tunnel\n%s", opened, now, d.logs())
	}
}

// sendUntilErrorScript sends through CONNECT without pause until a send fails, then writes
// the error to argv[3] and exits 0.
const sendUntilErrorScript = pyConnect + `
s = connect("connect", sys.argv[1], int(sys.argv[2]))
open(sys.argv[4], "w").close()
chunk = b"u" * 65536
try:
    while True:
        s.sendall(chunk)
except OSError as e:
    with open(sys.argv[3], "w") as f:
        f.write(str(e))
`

// TestLinkDownDuringUploadRunExits: the link goes down while the program uploads as fast as
// it can, so that the tunnel's TCP connection has a full send buffer that will never drain.
// The program's connection must fail within the keepalive bound (the download case is
// TestLinkDownUnderLiveTunnel), and run must then exit with the program instead of waiting on
// the dead connection for as long as TCP keeps retrying.
func TestLinkDownDuringUploadRunExits(t *testing.T) {
	t.Parallel()
	needTools(t, "ip", "python3")
	needRoot(t)
	// The target on this machine's loopback reads and discards everything.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				buf := make([]byte, 64<<10)
				for {
					if _, err := c.Read(buf); err != nil {
						return
					}
				}
			}()
		}
	}()
	subnet := 64 + rand.IntN(160)
	hostAddr, devAddr := fmt.Sprintf("198.18.%d.1", subnet), fmt.Sprintf("198.18.%d.2", subnet)
	suffix := fmt.Sprintf("%d", (os.Getpid()+3)%100000)
	devNS, veth := "tpx-lu-"+suffix, "tpxu"+suffix
	makeNamespace(t, devNS, veth, hostAddr, devAddr)
	srv := startDevServer(t, "--listen", hostAddr+":0", "--allow", "127.0.0.0/8", "--shutdown-timeout", "3s")

	dir := t.TempDir()
	script, report, sending := filepath.Join(dir, "upload.py"), filepath.Join(dir, "report"), filepath.Join(dir, "sending")
	if err := writeFile(script, sendUntilErrorScript); err != nil {
		t.Fatal(err)
	}
	host, port, _ := net.SplitHostPort(ln.Addr().String())
	run := exec.Command("ip", "netns", "exec", devNS, binary, "run", "--", "python3", script, host, port, report, sending)
	run.Env = srv.clientEnv(t, "_PROXY_DBG=1")
	run.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	out := &syncbuf.Buffer{}
	run.Stdout, run.Stderr = out, out
	if err := run.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { run.Wait(); close(done) }()
	t.Cleanup(func() {
		select {
		case <-done:
		default:
			syscall.Kill(-run.Process.Pid, syscall.SIGKILL)
			<-done
		}
	})
	logs := func() string { return fmt.Sprintf("run output:\n%s\nserve log:\n%s", out, srv.stderr) }
	deadline := time.Now().Add(30 * time.Second)
	for {
		if _, err := os.Stat(sending); err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the program did not start sending within 30s\n%s", logs())
		}
		time.Sleep(20 * time.Millisecond)
	}
	time.Sleep(500 * time.Millisecond) // fill every buffer on the way

	if out, err := exec.Command("ip", "-n", devNS, "link", "set", veth+"n", "down").CombinedOutput(); err != nil {
		t.Fatalf("link down: %v\n%s", err, out)
	}
	down := time.Now()
	select {
	case <-done:
	case <-time.After(keepaliveBound + 10*time.Second):
		_, err := os.Stat(report)
		t.Fatalf("run had not exited %s after the link went down (the program's send had failed: %v)\n%s",
			time.Since(down).Round(time.Second), err == nil, logs())
	}
	t.Logf("run exited %s after the link went down (exit %d); the program's send failed with: %s",
		time.Since(down).Round(time.Millisecond), run.ProcessState.ExitCode(), readFileIfAny(report))
	if _, err := os.Stat(report); err != nil {
		t.Fatalf("the program's send never failed\n%s", logs())
	}
}
