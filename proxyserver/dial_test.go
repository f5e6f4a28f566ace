package proxyserver

import (
	"net"
	"net/netip"
	"syscall"
	"testing"
	"time"

	"github.com/tessel/tessel-proxy/wire"
)

// fullBacklogAt listens on ip:port with a full accept queue, so that the kernel drops SYNs
// to it and a connect hangs until its deadline, as to a host that drops packets.
func fullBacklogAt(t *testing.T, ip [4]byte, port uint16) {
	t.Helper()
	fd, err := syscall.Socket(syscall.AF_INET, syscall.SOCK_STREAM, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { syscall.Close(fd) })
	if err := syscall.Bind(fd, &syscall.SockaddrInet4{Addr: ip, Port: int(port)}); err != nil {
		t.Skipf("bind %v:%d: %v", ip, port, err)
	}
	if err := syscall.Listen(fd, 0); err != nil {
		t.Fatal(err)
	}
	filler, err := net.Dial("tcp", netip.AddrPortFrom(netip.AddrFrom4(ip), port).String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { filler.Close() })
}

// TestDialMovesOnFromAnAddressThatDropsPackets: a name whose first address drops packets
// (a broken IPv6 path, a dead host) still connects through its second address within the
// dial timeout, rather than spending all of it on the first.
func TestDialMovesOnFromAnAddressThatDropsPackets(t *testing.T) {
	host, port := echoServer(t) // 127.0.0.1
	fullBacklogAt(t, [4]byte{127, 0, 0, 2}, port)
	h := newHarness(t, allowLoopback, func(c *Config) {
		c.Resolver = fakeResolver{"half-broken.example": {netip.MustParseAddr("127.0.0.2"), netip.MustParseAddr(host)}}
		c.DialTimeout = 6 * time.Second
	})
	sess := h.tunnel()
	stream, reply := open(t, sess, wire.KindNet, "half-broken.example", port, []byte("ping"))
	if reply.Status != wire.StatusOK {
		t.Fatalf("status %v (%s), want ok through the second address", reply.Status, reply.Message)
	}
	stream.Close()
	if got := readAllTimeout(t, stream); string(got) != "ping" {
		t.Errorf("echo: %q", got)
	}
}
