//go:build linux

package e2e

import (
	"errors"
	"io"
	"net"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/tessel/tessel-proxy/internal/testtarget"
)

// readResetScript connects through run's front (argv[3]: connect or socks), sends one byte,
// reads to the end, and prints "reset N" when the read ends with ECONNRESET after N bytes,
// "eof N" when it ends cleanly.
const readResetScript = pyConnect + `
s = connect(sys.argv[3], sys.argv[1], int(sys.argv[2]))
s.sendall(b"g")
n = 0
try:
    while True:
        b = s.recv(65536)
        if not b:
            print("eof %d" % n)
            break
        n += len(b)
except ConnectionResetError:
    print("reset %d" % n)
`

// sendResetScript connects through run's front (argv[3]), sends a partial request and
// resets its connection (SO_LINGER 0, then close).
const sendResetScript = pyConnect + `
s = connect(sys.argv[3], sys.argv[1], int(sys.argv[2]))
s.sendall(b"a partial request")
time.sleep(0.2)
s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
s.close()
print("reset sent")
`

// TestTargetResetReachesProgramAsReset: a target sends 100 KB and then resets its
// connection. A program reading through run, by CONNECT or SOCKS5, must end with a reset
// error (ECONNRESET), not a clean end of stream that passes a truncated transfer for whole.
func TestTargetResetReachesProgramAsReset(t *testing.T) {
	t.Parallel()
	needTools(t, "python3")
	srv := startDevServer(t, "--allow", "127.0.0.0/8")
	for _, via := range []string{"connect", "socks"} {
		t.Run(via, func(t *testing.T) {
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { ln.Close() })
			go func() {
				c, err := ln.Accept()
				if err != nil {
					return
				}
				io.ReadFull(c, make([]byte, 1))
				c.Write(make([]byte, 100<<10))
				c.(*net.TCPConn).SetLinger(0)
				c.Close()
			}()
			host, port, _ := net.SplitHostPort(ln.Addr().String())
			r := runTool(t, srv.clientEnv(t), "run", "--", "python3", "-c", readResetScript, host, port, via)
			if r.code != 0 || !strings.HasPrefix(r.stdout, "reset ") {
				t.Fatalf("the program read %q (exit %d), want a reset; stderr:\n%s\nserve log:\n%s", r.stdout, r.code, r.stderr, srv.stderr)
			}
			t.Logf("through %s: %s", via, strings.TrimSpace(r.stdout))
		})
	}
}

// TestProgramResetReachesTargetAsReset: a program under run resets its connection; the
// target must read ECONNRESET, not an end of input that could pass a partial request off
// as complete.
func TestProgramResetReachesTargetAsReset(t *testing.T) {
	t.Parallel()
	needTools(t, "python3")
	srv := startDevServer(t, "--allow", "127.0.0.0/8")
	for _, via := range []string{"connect", "socks"} {
		t.Run(via, func(t *testing.T) {
			ln, got := testtarget.Reader(t, 30*time.Second)
			host, port, _ := net.SplitHostPort(ln.Addr().String())
			r := runTool(t, srv.clientEnv(t), "run", "--", "python3", "-c", sendResetScript, host, port, via)
			if r.code != 0 {
				t.Fatalf("the program: exit %d, stdout %q, stderr:\n%s", r.code, r.stdout, r.stderr)
			}
			select {
			case err := <-got:
				if !errors.Is(err, syscall.ECONNRESET) {
					t.Fatalf("the target read %v, want ECONNRESET\nserve log:\n%s", err, srv.stderr)
				}
			case <-time.After(35 * time.Second):
				t.Fatal("the target's read did not end")
			}
		})
	}
}
