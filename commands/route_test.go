package commands

import (
	"encoding/json"
	"strings"
	"testing"
)

func TestRoute(t *testing.T) {
	cases := []struct {
		name    string
		env     map[string]string
		args    []string
		want    string // whole first line of stdout
		wantErr string
		code    int
	}{
		{"default local list", map[string]string{"PROXY_TOKEN": "t"}, []string{"192.168.1.20:8080"},
			"direct (PROXY_LOCAL entry 192.168.0.0/16 matches)", "", 0},
		{"public host", map[string]string{"PROXY_TOKEN": "t", "PROXY_HOST": "proxy.example.net"}, []string{"example.com:443"},
			"proxy (tunnel to proxy.example.net:443)", "", 0},
		{"no token", nil, []string{"example.com"}, "direct (no token configured)", "", 0},
		{"suffix entry on a label boundary", map[string]string{"PROXY_TOKEN": "t", "PROXY_LOCAL": ".corp.example"},
			[]string{"badcorp.example"}, "proxy (tunnel to proxy.tessel.io:443)", "", 0},
		{"IPv6 in brackets with port", map[string]string{"PROXY_TOKEN": "t", "PROXY_LOCAL": "fd00::/8"},
			[]string{"[fd00::5]:22"}, "direct (PROXY_LOCAL entry fd00::/8 matches)", "", 0},
		{"bare IPv6", map[string]string{"PROXY_TOKEN": "t", "PROXY_LOCAL": "none"},
			[]string{"::1"}, "proxy (tunnel to proxy.tessel.io:443)", "", 0},
		{"tls dialer, untrusted", map[string]string{"PROXY_TOKEN": "t"}, []string{"--tls", "example.com"},
			"direct (tls dialer and PROXY_TRUSTED is off)", "", 0},
		{"tls dialer, trusted", map[string]string{"PROXY_TOKEN": "t", "PROXY_TRUSTED": "1"}, []string{"--tls", "example.com"},
			"proxy (tunnel to proxy.tessel.io:443)", "", 0},
		{"via PROXY_VIA, password masked", map[string]string{"PROXY_TOKEN": "t", "PROXY_VIA": "http://alice:s3cret@proxy.corp:3128"}, []string{"example.com"},
			"proxy (tunnel to proxy.tessel.io:443 via upstream proxy http://alice:********@proxy.corp:3128 (PROXY_VIA))", "", 0},
		{"via HTTPS_PROXY", map[string]string{"PROXY_TOKEN": "t", "HTTPS_PROXY": "proxy.corp:3128"}, []string{"example.com"},
			"proxy (tunnel to proxy.tessel.io:443 via upstream proxy http://proxy.corp:3128 (HTTPS_PROXY))", "", 0},
		{"HTTPS_PROXY but NO_PROXY", map[string]string{"PROXY_TOKEN": "t", "HTTPS_PROXY": "proxy.corp:3128", "NO_PROXY": "tessel.io"}, []string{"example.com"},
			"proxy (tunnel to proxy.tessel.io:443)", "", 0},
		{"over WebSocket", map[string]string{"PROXY_TOKEN": "t", "PROXY_HOST": "wss://proxy.example.net/t"}, []string{"example.com"},
			"proxy (tunnel to wss://proxy.example.net/t)", "", 0},
		{"bad PROXY_VIA", map[string]string{"PROXY_VIA": "socks5://alice:s3cret@proxy.corp:1080"}, []string{"example.com"}, "", "PROXY_VIA", 2},
		{"bad config", map[string]string{"PROXY_PORT": "http"}, []string{"example.com"}, "", "PROXY_PORT", 2},
		{"bad port", nil, []string{"example.com:0"}, "", "1..65535", 2},
		{"no host", nil, nil, "", "HOST[:PORT]", 2},
		{"IPv6 in brackets", map[string]string{"PROXY_TOKEN": "t", "PROXY_LOCAL": "::1"},
			[]string{"[::1]"}, "direct (PROXY_LOCAL entry ::1 matches)", "", 0},
		{"IPv6 zone with port", map[string]string{"PROXY_TOKEN": "t", "PROXY_LOCAL": "fe80::/10"},
			[]string{"[fe80::1%eth0]:22"}, "direct (PROXY_LOCAL entry fe80::/10 matches)", "", 0},
		{"bad port on IPv6", nil, []string{"[::1]:99999"}, "", "1..65535", 2},
		{"unclosed bracket", nil, []string{"[::1"}, "", "not HOST or HOST:PORT", 2},
		{"stray bracket", nil, []string{"::1]"}, "", "not HOST or HOST:PORT", 2},
		{"name in brackets", nil, []string{"[example.com]:80"}, "", "brackets hold an IPv6 address", 2},
		{"URL", nil, []string{"https://example.com:8443/x"}, "", "give its host and port, e.g. example.com:8443", 2},
		{"space in host", nil, []string{"exa mple.com"}, "", "not HOST or HOST:PORT", 2},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			runTestEnv(t)
			for k, v := range tc.env {
				t.Setenv(k, v)
			}
			out, stderr, code := runMain(t, append([]string{"route"}, tc.args...)...)
			if code != tc.code {
				t.Fatalf("exit %d, want %d (stderr %q)", code, tc.code, stderr)
			}
			if got := strings.TrimSuffix(out, "\n"); got != tc.want {
				t.Fatalf("stdout %q, want %q", got, tc.want)
			}
			if !strings.Contains(stderr, tc.wantErr) {
				t.Fatalf("stderr %q should mention %q", stderr, tc.wantErr)
			}
		})
	}
}

func TestRouteJSON(t *testing.T) {
	runTestEnv(t)
	t.Setenv("PROXY_TOKEN", "t")
	t.Setenv("PROXY_LOCAL", "db.internal")
	for _, tc := range []struct {
		target, route, reason string
	}{
		{"db.internal:5432", "direct", "PROXY_LOCAL entry db.internal matches"},
		{"example.com", "proxy", "tunnel to proxy.tessel.io:443"},
	} {
		out, stderr, code := runMain(t, "route", "--json", tc.target)
		if code != 0 {
			t.Fatalf("exit %d: %s", code, stderr)
		}
		var got struct {
			Host   string `json:"host"`
			Port   int    `json:"port"`
			Route  string `json:"route"`
			Reason string `json:"reason"`
			Proxy  string `json:"proxy"`
		}
		if err := json.Unmarshal([]byte(out), &got); err != nil {
			t.Fatalf("not JSON: %v\n%s", err, out)
		}
		if got.Route != tc.route || got.Reason != tc.reason {
			t.Fatalf("%s: %+v, want route %s because %q", tc.target, got, tc.route, tc.reason)
		}
		if (got.Route == "proxy") != (got.Proxy == "proxy.tessel.io:443") {
			t.Fatalf("%s: proxy field %q", tc.target, got.Proxy)
		}
	}
}
