//go:build linux

package e2e

import (
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tessel/tessel-proxy/internal/syncbuf"
)

// pyConnect is Python for a program under `run` that opens a raw TCP connection through the
// HTTP proxy `run` set (CONNECT, with the front's credentials) or its SOCKS5 proxy
// (ALL_PROXY, username/password), and returns the socket.
const pyConnect = `
import base64, os, socket, struct, sys, time, urllib.parse

def via_connect(host, port):
    u = urllib.parse.urlsplit(os.environ["HTTP_PROXY"])
    s = socket.create_connection((u.hostname, u.port))
    cred = "%s:%s" % (urllib.parse.unquote(u.username), urllib.parse.unquote(u.password))
    s.sendall(("CONNECT %s:%d HTTP/1.1\r\nHost: %s:%d\r\nProxy-Authorization: Basic %s\r\n\r\n"
               % (host, port, host, port, base64.b64encode(cred.encode()).decode())).encode())
    head = b""
    while b"\r\n\r\n" not in head:
        b = s.recv(1)
        if not b:
            sys.exit("the proxy closed the connection during CONNECT")
        head += b
    if b" 200 " not in head.split(b"\r\n")[0] + b" ":
        sys.exit("CONNECT refused: %r" % head)
    return s

def via_socks(host, port):
    u = urllib.parse.urlsplit(os.environ["ALL_PROXY"])
    s = socket.create_connection((u.hostname, u.port))
    user, pw = urllib.parse.unquote(u.username).encode(), urllib.parse.unquote(u.password).encode()
    s.sendall(b"\x05\x01\x02")
    if s.recv(2) != b"\x05\x02":
        sys.exit("SOCKS5: the proxy refused username/password authentication")
    s.sendall(b"\x01" + bytes([len(user)]) + user + bytes([len(pw)]) + pw)
    if s.recv(2) != b"\x01\x00":
        sys.exit("SOCKS5: the proxy refused the credentials")
    s.sendall(b"\x05\x01\x00\x03" + bytes([len(host)]) + host.encode() + struct.pack(">H", port))
    head = s.recv(4)
    if len(head) < 4 or head[1] != 0:
        sys.exit("SOCKS5: CONNECT refused: %r" % head)
    s.recv({1: 4, 4: 16}.get(head[3], 0) + 2)
    return s

def connect(how, host, port):
    return {"connect": via_connect, "socks": via_socks}[how](host, port)

def wait_for(path):
    for _ in range(1200):
        if os.path.exists(path):
            return
        time.sleep(0.1)
`

// uploadScript sends to a target that never reads, until a send has been blocked for 2 s
// (or 1 GiB went out, which means nothing held it back), writes how many bytes it sent to
// argv[3], and keeps the connection open until argv[4] exists.
const uploadScript = pyConnect + `
s = connect("connect", sys.argv[1], int(sys.argv[2]))
s.settimeout(2)
chunk, sent = b"u" * 65536, 0
try:
    while sent < 1 << 30:
        sent += s.send(chunk)
except socket.timeout:
    pass
with open(sys.argv[3] + ".tmp", "w") as f:
    f.write(str(sent))
os.rename(sys.argv[3] + ".tmp", sys.argv[3])
wait_for(sys.argv[4])
`

// stallScript connects (through SOCKS5, where uploadScript uses CONNECT) and never reads;
// it says so in argv[3] and keeps the connection open until argv[4] exists.
const stallScript = pyConnect + `
s = connect("socks", sys.argv[1], int(sys.argv[2]))
open(sys.argv[3], "w").close()
wait_for(sys.argv[4])
`

// memory is a process's resident set, now and at its peak, from /proc/PID/status.
type memory struct{ rss, peak int64 } // KiB

func (m memory) String() string {
	return fmt.Sprintf("VmRSS %.1f MB, VmHWM %.1f MB", float64(m.rss)/1024, float64(m.peak)/1024)
}

func readMemory(t *testing.T, pid int) memory {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatal(err)
	}
	var m memory
	for _, line := range strings.Split(string(b), "\n") {
		k, v, ok := strings.Cut(line, ":")
		if !ok {
			continue
		}
		n, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
		switch k {
		case "VmRSS":
			m.rss = n
		case "VmHWM":
			m.peak = n
		}
	}
	return m
}

// Bounds for the backpressure tests. What a stalled stream may hold is a yamux window at
// each end (4 MiB towards the client, 1 MiB towards the server), relay buffers, and the
// kernel's socket buffers on the four sockets along the way (a few MiB each on loopback);
// a relay that buffered without bound would take in the whole gigabyte.
const (
	maxStalledBytes = 64 << 20
	maxProcessPeak  = 96 << 10 // KiB of VmHWM for run and for serve
)

// backpressureSetup is a dev server, and a program under `run` that runs script with the
// target's host and port, a file it reports through and a file that tells it to stop.
type backpressureSetup struct {
	srv          *devServer
	run          *exec.Cmd
	report, stop string
	out          *syncbuf.Buffer
	done         chan struct{}
}

func startBackpressure(t *testing.T, script string, target net.Addr) *backpressureSetup {
	t.Helper()
	needTools(t, "python3")
	srv := startDevServer(t, "--allow", "127.0.0.0/8")
	dir := t.TempDir()
	b := &backpressureSetup{srv: srv, report: filepath.Join(dir, "report"), stop: filepath.Join(dir, "stop"),
		out: &syncbuf.Buffer{}, done: make(chan struct{})}
	path := filepath.Join(dir, "program.py")
	if err := writeFile(path, script); err != nil {
		t.Fatal(err)
	}
	host, port, _ := net.SplitHostPort(target.String())
	b.run = exec.Command(binary, "run", "--", "python3", path, host, port, b.report, b.stop)
	b.run.Env = srv.clientEnv(t)
	b.run.Stdout, b.run.Stderr = b.out, b.out
	if err := b.run.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { b.run.Wait(); close(b.done) }()
	t.Cleanup(func() {
		writeFile(b.stop, "")
		select {
		case <-b.done:
		case <-time.After(15 * time.Second):
			b.run.Process.Kill()
			<-b.done
		}
	})
	deadline := time.Now().Add(60 * time.Second)
	for {
		if _, err := os.Stat(b.report); err == nil {
			return b
		}
		select {
		case <-b.done:
			t.Fatalf("the program exited (%v) before its report\n%s\nserve log:\n%s", b.run.ProcessState, b.out, srv.stderr)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("no report from the program within 60s\n%s\nserve log:\n%s", b.out, srv.stderr)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// checkMemory reports the memory of run and serve, and fails the test past the bound.
func (b *backpressureSetup) checkMemory(t *testing.T) {
	t.Helper()
	runMem, srvMem := readMemory(t, b.run.Process.Pid), readMemory(t, b.srv.cmd.Process.Pid)
	t.Logf("run: %s; serve: %s", runMem, srvMem)
	if runMem.peak > maxProcessPeak || srvMem.peak > maxProcessPeak {
		t.Errorf("memory past %d MB: run %s, serve %s", maxProcessPeak>>10, runMem, srvMem)
	}
}

// TestUploadToTargetThatNeverReads: the program keeps sending, the target never reads. The
// program's sends must block after a bounded amount, and neither run nor serve may buffer
// the rest.
func TestUploadToTargetThatNeverReads(t *testing.T) {
	t.Parallel()
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
			t.Cleanup(func() { c.Close() }) // held open, never read
		}
	}()
	b := startBackpressure(t, uploadScript, ln.Addr())
	sent, err := strconv.ParseInt(readFile(t, b.report), 10, 64)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("the program sent %.1f MB before its sends blocked", float64(sent)/(1<<20))
	if sent > maxStalledBytes {
		t.Errorf("the program sent %d bytes to a target that reads nothing, want at most %d: something buffers without bound", sent, maxStalledBytes)
	}
	b.checkMemory(t)
}

// TestDownloadThatTheProgramNeverReads: the target keeps sending, the program never reads.
// The target's writes must block after a bounded amount, and neither serve nor run may
// buffer the rest.
func TestDownloadThatTheProgramNeverReads(t *testing.T) {
	t.Parallel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	var written atomic.Int64
	blocked := make(chan struct{})
	go func() {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		t.Cleanup(func() { c.Close() })
		chunk := make([]byte, 64<<10)
		for written.Load() < 1<<30 {
			c.SetWriteDeadline(time.Now().Add(2 * time.Second))
			n, err := c.Write(chunk)
			written.Add(int64(n))
			if errors.Is(err, os.ErrDeadlineExceeded) {
				break
			}
			if err != nil {
				return
			}
		}
		close(blocked)
	}()
	b := startBackpressure(t, stallScript, ln.Addr())
	select {
	case <-blocked:
	case <-time.After(60 * time.Second):
		t.Fatalf("the target's writes never blocked (%d bytes written)\n%s", written.Load(), b.out)
	}
	t.Logf("the target wrote %.1f MB before its writes blocked", float64(written.Load())/(1<<20))
	if n := written.Load(); n > maxStalledBytes {
		t.Errorf("the target wrote %d bytes to a program that reads nothing, want at most %d: something buffers without bound", n, maxStalledBytes)
	}
	b.checkMemory(t)
}
