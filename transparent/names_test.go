package transparent

import (
	"net/netip"
	"testing"
	"time"
)

func TestSyntheticAddressesRoundTrip(t *testing.T) {
	for _, i := range []uint32{1, 2, 255, 256, 65536, poolSize - 1} {
		a4, a6 := syntheticAddrs(i)
		if !synthetic4.Contains(a4) || !synthetic6.Contains(a6) {
			t.Fatalf("index %d: %s, %s outside the synthetic ranges", i, a4, a6)
		}
		for _, a := range []netip.Addr{a4, a6} {
			if got, ok := syntheticIndex(a); !ok || got != i {
				t.Errorf("syntheticIndex(%s) = %d, %v; want %d", a, got, ok, i)
			}
		}
	}
	if a4, a6 := syntheticAddrs(1); a4.String() != "240.128.0.1" || a6.String() != "fd74:7078:7479:1::1" {
		t.Errorf("index 1 is %s, %s", a4, a6)
	}
	for _, s := range []string{"240.0.0.1", "240.127.255.255", "241.0.0.1", "10.0.0.1", "fd74:7078:7479::1", "fd74:7078:7479:1:1::1", "fd74:7078:7479:1::80:0", "::ffff:10.0.0.1"} {
		if i, ok := syntheticIndex(netip.MustParseAddr(s)); ok {
			t.Errorf("syntheticIndex(%s) = %d, true; want not synthetic", s, i)
		}
	}
	if i, ok := syntheticIndex(netip.MustParseAddr("::ffff:240.128.0.5")); !ok || i != 5 {
		t.Errorf("an IPv4-mapped synthetic address: %d, %v", i, ok)
	}
}

type fakeClock struct{ t time.Time }

func (c *fakeClock) now() time.Time          { return c.t }
func (c *fakeClock) advance(d time.Duration) { c.t = c.t.Add(d) }

func TestNameTableBounds(t *testing.T) {
	clock := &fakeClock{t: time.Unix(1e9, 0)}
	tab := newNameTable(3, time.Minute, clock.now)

	a, b, c := tab.assign("a.example"), tab.assign("b.example"), tab.assign("c.example")
	if a == b || b == c || a == c {
		t.Fatalf("indices %d %d %d: want three different", a, b, c)
	}
	if again := tab.assign("a.example"); again != a {
		t.Errorf("a.example again: %d, want %d", again, a)
	}
	// a.example was used last; b.example is the least recently used and goes first.
	d := tab.assign("d.example")
	if tab.len() != 3 {
		t.Errorf("table holds %d names, want at most 3", tab.len())
	}
	if name, ok := tab.name(b); ok {
		t.Errorf("b.example's index still names %q after eviction", name)
	}
	if d == b {
		t.Errorf("the evicted index %d came back at once", b)
	}
	for i, want := range map[uint32]string{a: "a.example", c: "c.example", d: "d.example"} {
		if got, ok := tab.name(i); !ok || got != want {
			t.Errorf("name(%d) = %q, %v; want %q", i, got, ok, want)
		}
	}

	// Unused for the idle time: forgotten. A lookup counts as a use.
	clock.advance(50 * time.Second)
	tab.name(a)
	clock.advance(20 * time.Second)
	if _, ok := tab.name(c); ok {
		t.Error("c.example is still known 70s after its last use (idle 1m)")
	}
	if got, ok := tab.name(a); !ok || got != "a.example" {
		t.Errorf("a.example, used 20s ago, is gone: %q %v", got, ok)
	}
	if tab.len() != 1 {
		t.Errorf("after expiry the table holds %d names, want 1", tab.len())
	}
}

func TestNameTableHandsOutIndicesInTurn(t *testing.T) {
	clock := &fakeClock{t: time.Unix(1e9, 0)}
	tab := newNameTable(2, time.Hour, clock.now)
	seen := map[uint32]bool{}
	for i := range 50 {
		idx := tab.assign(string(rune('a'+i%26)) + ".example" + string(rune('0'+i/26)))
		if seen[idx] {
			t.Fatalf("index %d handed out twice within 50 names", idx)
		}
		seen[idx] = true
	}
}
