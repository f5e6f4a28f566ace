//go:build linux

package proxyserver

import (
	"fmt"
	"math/rand/v2"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"testing"

	"github.com/tessel/tessel-proxy/internal/testnetns"
)

// TestOwnAddressesReadsInterfaces puts an address on a dummy interface in a network
// namespace of the test's own and checks that the list the server reads there has it.
func TestOwnAddressesReadsInterfaces(t *testing.T) {
	if _, err := exec.LookPath("ip"); err != nil {
		t.Fatal("ip (iproute2) is not installed: run scripts/install-deps.sh")
	}
	ns := fmt.Sprintf("tp-own-%d", os.Getpid())
	addr := netip.AddrFrom4([4]byte{198, 18, byte(rand.IntN(256)), byte(1 + rand.IntN(254))})
	ip := func(args ...string) {
		t.Helper()
		if out, err := exec.Command("ip", args...).CombinedOutput(); err != nil {
			t.Fatalf("ip %v: %v\n%s", args, err, out)
		}
	}
	ip("netns", "add", ns)
	t.Cleanup(func() { exec.Command("ip", "netns", "delete", ns).Run() })
	ip("-n", ns, "link", "add", "tp-own0", "type", "veth", "peer", "name", "tp-own1")
	ip("-n", ns, "addr", "add", addr.String()+"/32", "dev", "tp-own0")
	ip("-n", ns, "link", "set", "tp-own0", "up")

	var has, loopback bool
	err := testnetns.Do(ns, func() error {
		own := newOwnAddrs(net.InterfaceAddrs, discardLogger())
		has, loopback = own.has(addr), own.has(netip.MustParseAddr("127.0.0.1"))
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if !has {
		t.Errorf("the server's own addresses in %s lack %v", ns, addr)
	}
	if loopback {
		t.Errorf("127.0.0.1 listed though lo is down in %s", ns)
	}
}
