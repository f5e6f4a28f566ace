package proxyconfig

import (
	"strings"
	"testing"
)

func TestLocalMatch(t *testing.T) {
	tests := []struct {
		name  string
		local string
		host  string
		want  string // the matching entry; "" = not local
	}{
		{"default loopback", "", "127.0.0.1", "127.0.0.0/8"},
		{"default private", "", "192.168.1.20", "192.168.0.0/16"},
		{"default localhost", "", "localhost", "localhost"},
		{"default LOCALHOST.", "", "LOCALHOST.", "localhost"},
		{"default public", "", "203.0.113.9", ""},
		{"default public name", "", "example.com", ""},
		{"IPv4-mapped IPv6 unmapped", "", "::ffff:127.0.0.1", "127.0.0.0/8"},
		{"IPv4-mapped IPv6 in brackets", "", "[::ffff:10.1.2.3]", "10.0.0.0/8"},

		{"IPv4 address", "192.0.2.7", "192.0.2.7", "192.0.2.7"},
		{"IPv4 address other", "192.0.2.7", "192.0.2.8", ""},
		{"IPv6 address", "2001:db8::1", "2001:db8::1", "2001:db8::1"},
		{"IPv6 address, host in brackets", "2001:db8::1", "[2001:db8::1]", "2001:db8::1"},
		{"IPv6 address in brackets", "[2001:db8::1]", "2001:db8::1", "[2001:db8::1]"},
		{"IPv6 address, other spelling", "2001:db8:0:0::1", "2001:DB8::1", "2001:db8:0:0::1"},
		{"IPv6 zone ignored", "fe80::1", "fe80::1%eth0", "fe80::1"},
		{"IPv6 zone in prefix match", "fe80::/10", "fe80::1%eth0", "fe80::/10"},
		{"IPv6 prefix", "2001:db8::/32", "2001:db8:1::5", "2001:db8::/32"},
		{"IPv6 prefix outside", "2001:db8::/32", "2001:db9::5", ""},
		{"IPv6 prefix in brackets", "[2001:db8::]/32", "2001:db8:1::5", "[2001:db8::]/32"},
		{"mapped prefix covers IPv4", "::ffff:192.0.2.0/120", "192.0.2.200", "::ffff:192.0.2.0/120"},

		// /0 is everything (a 32-bit shift by 32 would make it /32).
		{"/0 is everything v4", "0.0.0.0/0", "203.0.113.9", "0.0.0.0/0"},
		{"/0 is everything v6", "::/0", "2001:db8::1", "::/0"},
		{"v4 /0 does not hold v6", "0.0.0.0/0", "2001:db8::1", ""},
		// A name is never an address in a CIDR, not even 0.0.0.0/0.
		{"names never match a CIDR", "0.0.0.0/0 ::/0", "example.com", ""},
		{"host bits set", "192.168.0.255/4", "200.1.2.3", "192.168.0.255/4"},
		{"/32", "198.18.0.1/32", "198.18.0.1", "198.18.0.1/32"},
		{"/32 other", "198.18.0.1/32", "198.18.0.2", ""},

		// .example.net matches on a label boundary: not badexample.net.
		{"suffix matches apex", ".example.net", "example.net", ".example.net"},
		{"suffix matches sub", ".example.net", "a.example.net", ".example.net"},
		{"suffix matches deep sub", ".example.net", "a.b.EXAMPLE.net.", ".example.net"},
		{"suffix needs label boundary", ".example.net", "badexample.net", ""},
		{"suffix does not match IP", ".0.1", "10.0.0.1", ""},
		{"name exact", "www.example.com", "www.example.com", "www.example.com"},
		{"name case-insensitive", "WWW.Example.com", "www.example.COM", "WWW.Example.com"},
		{"name trailing dot on entry", "www.example.com.", "www.example.com", "www.example.com."},
		{"name trailing dot on host", "www.example.com", "www.example.com.", "www.example.com"},
		{"name only one trailing dot", "www.example.com", "www.example.com..", ""},
		{"name is not a suffix", "example.com", "www.example.com", ""},

		{"comma separated", "a.test,b.test", "b.test", "b.test"},
		{"mixed separators", " a.test ,\tb.test\n c.test ", "c.test", "c.test"},
		{"replaces default", "a.test", "127.0.0.1", ""},
		{"none", "none", "127.0.0.1", ""},
		{"NONE", "NONE", "localhost", ""},
		{"first matching entry reported", "10.0.0.0/8 10.1.0.0/16", "10.1.2.3", "10.0.0.0/8"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			l, err := ParseLocal(tt.local)
			if err != nil {
				t.Fatalf("ParseLocal(%q): %v", tt.local, err)
			}
			got, ok := l.Match(tt.host)
			if ok != (tt.want != "") || got != tt.want {
				t.Errorf("PROXY_LOCAL=%q Match(%q) = %q, %v; want %q", tt.local, tt.host, got, ok, tt.want)
			}
		})
	}
}

func TestParseLocalErrors(t *testing.T) {
	tests := []struct{ local, want string }{
		{"10.0.0.0/33", "CIDR"},
		{"::/129", "CIDR"},
		{"10.0.0.0/", "CIDR"},
		{"10.0.0.0/x", "CIDR"},
		{"example.com/8", "CIDR"},
		{"localhost none", "stand alone"},
		{"*.example.net", `".example.net"`},
		{"http://example.net", "URL"},
		{"example.net:8080", "ports"},
		{"exa mple", ""}, // two valid names, no error
		{"ex!ample", "not an IP address"},
		{".", "not an IP address"},
		{"a..b", "not an IP address"},
	}
	for _, tt := range tests {
		_, err := ParseLocal(tt.local)
		if tt.want == "" {
			if err != nil {
				t.Errorf("ParseLocal(%q) = %v, want no error", tt.local, err)
			}
			continue
		}
		if err == nil || !strings.Contains(err.Error(), tt.want) || !strings.HasPrefix(err.Error(), "PROXY_LOCAL: ") {
			t.Errorf("ParseLocal(%q) error = %v, want PROXY_LOCAL: ...%s...", tt.local, err, tt.want)
		}
	}
}

func TestLocalEntriesAndString(t *testing.T) {
	l, err := ParseLocal("a.test, 10.0.0.0/8")
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(l.Entries(), "|"); got != "a.test|10.0.0.0/8" {
		t.Errorf("Entries = %q", got)
	}
	if l.String() != "a.test 10.0.0.0/8" {
		t.Errorf("String = %q", l.String())
	}
	none, _ := ParseLocal("none")
	if none.String() != "none" || len(none.Entries()) != 0 {
		t.Errorf("none: String %q Entries %v", none.String(), none.Entries())
	}
	var zero LocalList
	if _, ok := zero.Match("127.0.0.1"); ok {
		t.Error("the zero LocalList must match nothing")
	}
}
