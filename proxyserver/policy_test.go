package proxyserver

import (
	"errors"
	"net/netip"
	"testing"

	"github.com/tessel/tessel-proxy/wire"
)

func mustPrefixes(ss ...string) []netip.Prefix {
	out := make([]netip.Prefix, len(ss))
	for i, s := range ss {
		out[i] = netip.MustParsePrefix(s)
	}
	return out
}

func TestPolicyDefaultRanges(t *testing.T) {
	denied := []string{
		"0.0.0.0", "0.1.2.3", "127.0.0.1", "127.255.255.254", "10.0.0.1", "172.16.0.1",
		"172.31.255.255", "192.168.1.1", "169.254.1.1", "169.254.169.254", "100.64.0.1",
		"100.127.255.255", "224.0.0.1", "239.255.255.250", "255.255.255.255", "240.0.0.1",
		"::", "::1", "fc00::1", "fd12:3456::1", "fd00:ec2::254", "fe80::1", "ff02::1",
		"::ffff:127.0.0.1", "::ffff:10.0.0.1", "::ffff:169.254.169.254", "::127.0.0.1",
		"::10.0.0.1", "64:ff9b::7f00:1", "64:ff9b::a9fe:a9fe", "2002:7f00:1::1",
		"2002:c0a8:101::1", "64:ff9b:1::1",
		// IPv4-translated (SIIT) ::ffff:0:127.0.0.1, and Teredo whose client (stored
		// inverted) is 127.0.0.1 or whose server is 10.0.0.1.
		"::ffff:0:7f00:1", "2001:0:4136:e378:8000:63bf:80ff:fffe", "2001:0:a00:1:8000:63bf:3fff:fdd2",
		// Not globally reachable per the IANA special-purpose registries.
		"192.0.0.1", "192.0.0.8", "192.0.0.170", "192.0.2.1", "198.18.0.1", "198.19.255.255",
		"198.51.100.7", "203.0.113.200", "192.88.99.1", "2001:db8::1", "2001:2::1", "2001:10::1",
		"3fff::1", "100::1", "5f00::1", "2001:1::4",
		// The deprecated IPv4-compatible and IPv4-translated forms and the rest of the space
		// outside 2000::/3 are reserved: nothing routes them, whatever IPv4 address they carry.
		"::8.8.8.8", "::ffff:0:808:808", "4000::1", "8000::1", "1::1",
		// Teredo with a documentation client (192.0.2.45).
		"2001:0:4136:e378:8000:63bf:3fff:fdd2",
		// Azure's platform address, and Oracle Cloud's metadata.
		"168.63.129.16", "192.0.0.192",
	}
	allowed := []string{
		"1.1.1.1", "8.8.8.8", "172.32.0.1", "100.128.0.1", "192.0.1.255", "192.0.3.0",
		"198.17.255.255", "198.20.0.0", "2606:4700:4700::1111", "::ffff:1.1.1.1", "64:ff9b::808:808",
		"2002:808:808::1",
		// Globally reachable exceptions inside ranges that are not.
		"192.0.0.9", "192.0.0.10", "2001:1::1", "2001:1::2", "2001:3::1", "2001:20::1",
		"2001:4:112::1", "192.31.196.1", "192.175.48.1",
		// Teredo, server 65.54.227.120, client 1.2.3.4.
		"2001:0:4136:e378:8000:63bf:fefd:fcfb",
	}
	var p *Policy // nil is the zero policy
	for _, s := range denied {
		if err := p.Check(netip.MustParseAddr(s)); !errors.Is(err, wire.ErrDenied) {
			t.Errorf("%s: %v, want denied", s, err)
		}
	}
	for _, s := range allowed {
		if err := p.Check(netip.MustParseAddr(s)); err != nil {
			t.Errorf("%s: %v, want allowed", s, err)
		}
	}
}

// TestSpecialRangesAreWellFormed checks the table itself: prefixes in canonical form, each
// once, every entry with a name and where it is defined.
func TestSpecialRangesAreWellFormed(t *testing.T) {
	seen := map[netip.Prefix]bool{}
	for _, r := range specialRanges {
		if r.prefix != r.prefix.Masked() {
			t.Errorf("%v: not in canonical form (%v)", r.prefix, r.prefix.Masked())
		}
		if seen[r.prefix] {
			t.Errorf("%v listed twice", r.prefix)
		}
		seen[r.prefix] = true
		if r.name == "" || r.rfc == "" {
			t.Errorf("%v: no name or RFC", r.prefix)
		}
	}
}

func TestPolicyAllowOpensRangesInEverySpelling(t *testing.T) {
	p := &Policy{Allow: mustPrefixes("127.0.0.0/8", "10.1.0.0/16")}
	for _, s := range []string{"127.0.0.1", "::ffff:127.0.0.1", "10.1.2.3", "64:ff9b::a01:203", "2001:0:4136:e378:8000:63bf:80ff:fffe"} {
		if err := p.Check(netip.MustParseAddr(s)); err != nil {
			t.Errorf("%s with allow %v: %v", s, p.Allow, err)
		}
	}
	// A Teredo address is allowed only when every refused address inside it is: here the
	// client is 127.0.0.1 but the server 10.2.0.1.
	for _, s := range []string{"10.2.0.1", "::1", "169.254.169.254", "2001:0:a02:1:8000:63bf:80ff:fffe"} {
		if err := p.Check(netip.MustParseAddr(s)); err == nil {
			t.Errorf("%s allowed by %v", s, p.Allow)
		}
	}
	if err := p.Check(netip.MustParseAddr("fe80::1%eth0")); err == nil {
		t.Error("an address with a zone was allowed")
	}
}

func TestDeniedReasonNamesTheRange(t *testing.T) {
	tests := map[string]string{
		"169.254.169.254":  "cloud metadata (AWS, GCP, Azure, OpenStack)",
		"127.0.0.1":        "loopback (RFC 1122)",
		"10.0.0.1":         "private-use (RFC 1918)",
		"100.64.0.1":       "shared address space (CGNAT) (RFC 6598)",
		"192.0.2.1":        "documentation (TEST-NET-1) (RFC 5737)",
		"2001:db8::1":      "documentation (RFC 3849)",
		"::ffff:127.0.0.1": "loopback (RFC 1122) (127.0.0.1 inside)",
		"8.8.8.8":          "",
	}
	for addr, want := range tests {
		if got := DeniedReason(netip.MustParseAddr(addr)); got != want {
			t.Errorf("DeniedReason(%s) = %q, want %q", addr, got, want)
		}
	}
}

func TestParseHostAddrReadsEveryNumericSpelling(t *testing.T) {
	tests := []struct {
		host string
		want string // "" = not an address
	}{
		{"127.0.0.1", "127.0.0.1"},
		{"2130706433", "127.0.0.1"},
		{"0177.0.0.1", "127.0.0.1"},
		{"0x7f.1", "127.0.0.1"},
		{"0x7F000001", "127.0.0.1"},
		{"127.1", "127.0.0.1"},
		{"10.1.258", "10.1.1.2"},
		{"0", "0.0.0.0"},
		{"017700000001", "127.0.0.1"},
		{"::1", "::1"},
		{"[::1]", "::1"},
		{"::ffff:127.0.0.1", "::ffff:127.0.0.1"},
		{"example.com", ""},
		{"1.2.3.4.5", ""},
		{"256.0.0.1", ""},
		{"1.2.3.256", ""},
		{"4294967296", ""},
		{"08.0.0.1", ""}, // 8 is no octal digit: a name, resolved and judged like any other
		{"0x", ""},
		{"1.2.3.", ""},
		{"", ""},
		{"deadbeef", ""},
	}
	for _, tt := range tests {
		got, ok := ParseHostAddr(tt.host)
		if tt.want == "" {
			if ok {
				t.Errorf("ParseHostAddr(%q) = %v, want not an address", tt.host, got)
			}
			continue
		}
		if !ok || got != netip.MustParseAddr(tt.want) {
			t.Errorf("ParseHostAddr(%q) = %v, %v; want %s", tt.host, got, ok, tt.want)
		}
	}
}

func FuzzParseHostAddrAgreesWithPolicy(f *testing.F) {
	for _, s := range []string{"127.0.0.1", "2130706433", "0x7f.1", "::ffff:10.0.0.1", "a.b"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, host string) {
		addr, ok := ParseHostAddr(host)
		if ok && !addr.IsValid() {
			t.Fatalf("ParseHostAddr(%q) returned an invalid address", host)
		}
	})
}
