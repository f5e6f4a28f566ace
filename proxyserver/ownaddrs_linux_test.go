//go:build linux

package proxyserver

import (
	"fmt"
	"math/rand/v2"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"runtime"
	"testing"

	"golang.org/x/sys/unix"
)

// TestOwnAddressesReadsInterfaces puts an address on a dummy interface in a network
// namespace of the test's own and checks that the list the server reads there has it.
func TestOwnAddressesReadsInterfaces(t *testing.T) {
	if _, err := exec.LookPath("ip"); err != nil {
		t.Skip("needs ip (iproute2), which scripts/install-deps.sh installs")
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

	type result struct {
		has, loopback bool
		err           error
	}
	ch := make(chan result, 1)
	go func() {
		// Never unlocked: the thread, in the namespace, ends with this goroutine.
		runtime.LockOSThread()
		fd, err := unix.Open("/run/netns/"+ns, unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			ch <- result{err: err}
			return
		}
		defer unix.Close(fd)
		if err := unix.Setns(fd, unix.CLONE_NEWNET); err != nil {
			ch <- result{err: err}
			return
		}
		own := newOwnAddrs(net.InterfaceAddrs, discardLogger())
		ch <- result{has: own.has(addr), loopback: own.has(netip.MustParseAddr("127.0.0.1"))}
	}()
	r := <-ch
	if r.err != nil {
		t.Fatalf("enter namespace %s: %v", ns, r.err)
	}
	if !r.has {
		t.Errorf("the server's own addresses in %s lack %v", ns, addr)
	}
	if r.loopback {
		t.Errorf("127.0.0.1 listed though lo is down in %s", ns)
	}
}
