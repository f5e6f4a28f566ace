package proxyserver

import (
	"net/netip"
	"testing"
	"time"

	"github.com/tessel/tessel-proxy/wire"
)

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
