package hostport

import (
	"net"
	"strings"
	"testing"
)

func TestParsePort(t *testing.T) {
	for s, want := range map[string]uint16{
		"1": 1, "443": 443, "65535": 65535, "0443": 443,
		"0": 0, "65536": 0, "-1": 0, "+443": 0, " 443": 0, "443 ": 0, "": 0, "https": 0, "0x1bb": 0,
	} {
		got, ok := ParsePort(s)
		if got != want || ok != (want != 0) {
			t.Errorf("ParsePort(%q) = %d, %v, want %d, %v", s, got, ok, want, want != 0)
		}
	}
}

func TestUnbracket(t *testing.T) {
	for _, tc := range []struct {
		in, want string
		had      bool
	}{
		{"[::1]", "::1", true},
		{"[fe80::1%eth0]", "fe80::1%eth0", true},
		{"::1", "::1", false},
		{"example.net", "example.net", false},
		{"[::1", "[::1", false},
		{"::1]", "::1]", false},
		{"[]", "", true},
		{"[", "[", false},
	} {
		got, had := Unbracket(tc.in)
		if got != tc.want || had != tc.had {
			t.Errorf("Unbracket(%q) = %q, %v, want %q, %v", tc.in, got, had, tc.want, tc.had)
		}
	}
}

// Bracket writes a host as net.JoinHostPort does, and Unbracket reads it back.
func TestBracketIsTheHostPartOfJoinHostPort(t *testing.T) {
	for _, host := range []string{"::1", "fe80::1%eth0", "192.0.2.1", "example.net", ""} {
		joined := net.JoinHostPort(host, "22")
		if got := Bracket(host) + ":22"; got != joined {
			t.Errorf("Bracket(%q)+\":22\" = %q, want %q", host, got, joined)
		}
		back, _ := Unbracket(strings.TrimSuffix(joined, ":22"))
		if back != host {
			t.Errorf("Unbracket(Bracket(%q)) = %q", host, back)
		}
	}
}
