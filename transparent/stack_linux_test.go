package transparent

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"go.uber.org/goleak"
	"golang.org/x/net/icmp"
	"golang.org/x/net/ipv4"
)

// TestMain lets the test binary be the namespace's first process (as tessel-proxy is) and
// the program run inside it (childEnv selects what it does there).
func TestMain(m *testing.M) {
	if len(os.Args) > 1 && os.Args[1] == InitArg {
		os.Exit(Init(os.Args[2:]))
	}
	if what := os.Getenv(childEnv); what != "" {
		os.Exit(insideChild(what, os.Args[1:]))
	}
	goleak.VerifyTestMain(m)
}

const childEnv = "TRANSPARENT_TEST_CHILD"

// insideChild is the program in the namespace: it reports what it saw on stdout.
func insideChild(what string, args []string) int {
	switch what {
	case "dial": // dial args[0], send "ping", half-close, print the answer
		c, err := net.DialTimeout("tcp", args[0], 10*time.Second)
		if err != nil {
			fmt.Println("dial error:", errno(err))
			return 0
		}
		c.Write([]byte("ping"))
		c.(*net.TCPConn).CloseWrite()
		b, err := io.ReadAll(c)
		fmt.Printf("read %q err %v\n", b, err)
		return 0
	case "dial2": // dial args[0] twice in turn, as "dial" does
		for range 2 {
			if insideChild("dial", args) != 0 {
				return 1
			}
		}
		return 0
	case "resolve":
		addrs, err := net.DefaultResolver.LookupHost(context.Background(), args[0])
		fmt.Println(strings.Join(addrs, " "), err)
		return 0
	case "udp": // a connected UDP socket: write, then read the refusal
		c, err := net.Dial("udp", args[0])
		if err != nil {
			fmt.Println("dial error:", err)
			return 0
		}
		c.SetDeadline(time.Now().Add(5 * time.Second))
		c.Write([]byte("x"))
		_, err = c.Read(make([]byte, 10))
		fmt.Println("udp:", errno(err))
		return 0
	case "id":
		fmt.Println(os.Getuid(), os.Getgid())
		return 0
	case "caps":
		fmt.Println(capabilities())
		return 0
	case "exit":
		return 7
	case "ping": // one ICMP echo request, from an ICMP datagram socket
		return ping(args[0])
	}
	return 99
}

// capabilities returns this process's effective and ambient capability sets.
func capabilities() string {
	b, _ := os.ReadFile("/proc/self/status")
	var out []string
	for _, line := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(line, "CapEff:") || strings.HasPrefix(line, "CapAmb:") {
			out = append(out, strings.Join(strings.Fields(line), " "))
		}
	}
	return strings.Join(out, ", ")
}

// ping sends one echo request to addr from a raw socket (as root) and prints the type of
// the ICMP message that came back.
func ping(addr string) int {
	c, err := icmp.ListenPacket("ip4:icmp", "0.0.0.0")
	if err != nil {
		fmt.Println("listen:", err)
		return 0
	}
	defer c.Close()
	msg := icmp.Message{Type: ipv4.ICMPTypeEcho, Body: &icmp.Echo{ID: 1, Seq: 1, Data: []byte("hi")}}
	b, _ := msg.Marshal(nil)
	if _, err := c.WriteTo(b, &net.IPAddr{IP: net.ParseIP(addr)}); err != nil {
		fmt.Println("write:", err)
		return 0
	}
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	buf := make([]byte, 1500)
	n, _, err := c.ReadFrom(buf)
	if err != nil {
		fmt.Println("ping:", err)
		return 0
	}
	reply, err := icmp.ParseMessage(1, buf[:n])
	if err != nil {
		fmt.Println("ping:", err)
		return 0
	}
	fmt.Println("ping:", reply.Type, reply.Code)
	return 0
}

// errno names the system error inside err, for comparison.
func errno(err error) string {
	var e syscall.Errno
	if errors.As(err, &e) {
		switch e {
		case syscall.ECONNREFUSED:
			return "ECONNREFUSED"
		case syscall.ECONNRESET:
			return "ECONNRESET"
		}
		return e.Error()
	}
	if err == nil {
		return "nil"
	}
	return err.Error()
}

// echoServer answers each connection with "pong:" and what it read until end of input.
func echoServer(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				b, _ := io.ReadAll(c)
				c.Write(append([]byte("pong:"), b...))
			}()
		}
	}()
	return l.Addr().String()
}

type dialLog struct {
	mu    sync.Mutex
	hosts []string
}

// add records a dial; a repeat of the last one (a client trying the name's IPv6 and then
// its IPv4 address) counts once.
func (d *dialLog) add(s string) {
	d.mu.Lock()
	if len(d.hosts) == 0 || d.hosts[len(d.hosts)-1] != s {
		d.hosts = append(d.hosts, s)
	}
	d.mu.Unlock()
}

func (d *dialLog) String() string {
	d.mu.Lock()
	defer d.mu.Unlock()
	return strings.Join(d.hosts, ",")
}

// runInside runs this test binary as the program, in a transparent run whose every dial
// goes to target (or fails for host "refuse.test"), and returns its stdout.
func runInside(t *testing.T, cfg Config, log *dialLog, target string, what string, args ...string) string {
	t.Helper()
	if cfg.Dial == nil {
		cfg.Dial = func(ctx context.Context, host string, port uint16) (net.Conn, error) {
			log.add(fmt.Sprintf("%s:%d", host, port))
			if host == "refuse.test" {
				return nil, errors.New("refused by the test")
			}
			var d net.Dialer
			return d.DialContext(ctx, "tcp", target)
		}
	}
	if cfg.Local == nil {
		cfg.Local = func(host string) bool { return host == "localhost" || host == "127.0.0.1" }
	}
	r, err := New(cfg)
	if err != nil {
		t.Fatalf("transparent mode cannot work here (these tests run as root on Linux with /dev/net/tun, as in CI): %v", err)
	}
	defer r.Close()
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(self, args...)
	cmd.Env = append(os.Environ(), childEnv+"="+what)
	var out, errb strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := r.Start(cmd); err != nil {
		t.Fatalf("Start: %v", err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		if what != "exit" && err != nil {
			t.Fatalf("the program: %v; stderr:\n%s", err, errb.String())
		}
		if what == "exit" {
			var ee *exec.ExitError
			if !errors.As(err, &ee) || ee.ExitCode() != 7 {
				t.Fatalf("exit status: %v, want 7", err)
			}
		}
	case <-time.After(60 * time.Second):
		cmd.Process.Kill()
		t.Fatalf("the program did not finish within 60s; stdout %q stderr %q", out.String(), errb.String())
	}
	return strings.TrimSpace(out.String())
}

func TestTransparentRun(t *testing.T) {
	target := echoServer(t)
	tests := []struct {
		name      string
		what      string
		args      []string
		want      string // the program's output
		wantDials string // what Dial was asked for
	}{
		{"a tunneled name is dialed by name, bytes flow both ways with half-close",
			"dial", []string{"tunneled.example:80"}, `read "pong:ping" err <nil>`, "tunneled.example:80"},
		{"an IP address is dialed as an address",
			"dial", []string{"203.0.113.9:8443"}, `read "pong:ping" err <nil>`, "203.0.113.9:8443"},
		{"a failed dial refuses the connection",
			"dial", []string{"refuse.test:80"}, "dial error: ECONNREFUSED", "refuse.test:80"},
		{"a synthetic address no name holds is refused",
			"dial", []string{"240.200.0.1:80"}, "dial error: ECONNREFUSED", ""},
		{"the gateway is this machine's loopback",
			"dial", []string{"240.0.0.1:8080"}, `read "pong:ping" err <nil>`, "127.0.0.1:8080"},
		{"a tunneled name resolves to a synthetic address",
			"resolve", []string{"tunneled.example"}, "240.128.0.1 fd74:7078:7479:1::1 <nil>", ""},
		{"UDP other than DNS is refused",
			"udp", []string{"192.0.2.1:9999"}, "udp: ECONNREFUSED", ""},
		{"ICMP is refused", "ping", []string{"192.0.2.1"}, "ping: destination unreachable 1", ""},
		{"the program keeps its uid and gid",
			"id", nil, fmt.Sprint(os.Getuid(), os.Getgid()), ""},
		{"the program's exit status is kept", "exit", nil, "", ""},
		{"the program has the capabilities it would have outside", "caps", nil, capabilities(), ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if tc.what == "ping" && os.Geteuid() != 0 {
				t.Skip("a raw ICMP socket needs root")
			}
			var log dialLog
			got := runInside(t, Config{}, &log, target, tc.what, tc.args...)
			if got != tc.want {
				t.Errorf("program printed %q, want %q", got, tc.want)
			}
			if log.String() != tc.wantDials {
				t.Errorf("dials %q, want %q", log.String(), tc.wantDials)
			}
		})
	}
}

func TestTransparentSecondConnectionCarriesFirstBytes(t *testing.T) {
	target := echoServer(t)
	var log dialLog
	var mu sync.Mutex
	var earlies []string
	cfg := Config{
		Dial: func(ctx context.Context, host string, port uint16) (net.Conn, error) {
			log.add("dial " + host)
			var d net.Dialer
			return d.DialContext(ctx, "tcp", target)
		},
		DialEarly: func(ctx context.Context, host string, port uint16, early []byte) (net.Conn, error) {
			log.add("early " + host)
			mu.Lock()
			earlies = append(earlies, string(early))
			mu.Unlock()
			var d net.Dialer
			c, err := d.DialContext(ctx, "tcp", target)
			if err == nil {
				_, err = c.Write(early)
			}
			return c, err
		},
	}
	got := runInside(t, cfg, &log, target, "dial2", "tunneled.example:80")
	if want := "read \"pong:ping\" err <nil>\nread \"pong:ping\" err <nil>"; got != want {
		t.Errorf("program printed %q, want %q", got, want)
	}
	// The first connection waits for its dial; the second, to a target just reached, is
	// accepted at once and its first bytes go with the dial.
	if want := "dial tunneled.example,early tunneled.example"; log.String() != want {
		t.Errorf("dials %q, want %q", log.String(), want)
	}
	if len(earlies) != 1 || earlies[0] != "ping" {
		t.Errorf("early data %q, want [ping]", earlies)
	}
}

func TestTransparentEarlyDialFailureResets(t *testing.T) {
	target := echoServer(t)
	var log dialLog
	cfg := Config{
		Dial: func(ctx context.Context, host string, port uint16) (net.Conn, error) {
			log.add("dial " + host)
			var d net.Dialer
			return d.DialContext(ctx, "tcp", target)
		},
		DialEarly: func(ctx context.Context, host string, port uint16, early []byte) (net.Conn, error) {
			log.add("early " + host)
			return nil, errors.New("the target went away")
		},
	}
	got := runInside(t, cfg, &log, target, "dial2", "tunneled.example:80")
	if want := "read \"pong:ping\" err <nil>\nread \"\" err read tcp"; !strings.HasPrefix(got, want) || !strings.HasSuffix(got, "connection reset by peer") {
		t.Errorf("program printed %q, want the second connection reset", got)
	}
}
