package proxyconfig

import (
	"errors"
	"net/url"
	"strings"
	"testing"
)

func TestParseWebSocketHost(t *testing.T) {
	tests := []struct {
		name     string
		env      []string
		host     string
		port     int
		path     string
		wantErr  string
		errNames string // the variable the error must name
	}{
		{name: "wss with port and path", env: []string{"PROXY_HOST", "wss://proxy.example.net:8443/t/x"}, host: "proxy.example.net", port: 8443, path: "/t/x"},
		{name: "wss default port and path", env: []string{"PROXY_HOST", "wss://proxy.example.net"}, host: "proxy.example.net", port: 443, path: DefaultWebSocketPath},
		{name: "wss root path kept", env: []string{"PROXY_HOST", "wss://proxy.example.net/"}, host: "proxy.example.net", port: 443, path: "/"},
		{name: "wss IPv6", env: []string{"PROXY_HOST", "wss://[2001:db8::1]:444/tunnel"}, host: "2001:db8::1", port: 444, path: "/tunnel"},
		{name: "wss port from PROXY_PORT", env: []string{"PROXY_HOST", "wss://p.example/tunnel", "PROXY_PORT", "8443"}, host: "p.example", port: 8443, path: "/tunnel"},
		{name: "wss equal ports", env: []string{"PROXY_HOST", "wss://p.example:8443/tunnel", "PROXY_PORT", "8443"}, host: "p.example", port: 8443, path: "/tunnel"},
		{name: "ports disagree", env: []string{"PROXY_HOST", "wss://p.example:8443/tunnel", "PROXY_PORT", "443"}, wantErr: "disagrees", errNames: VarPort},
		{name: "plain ws refused", env: []string{"PROXY_HOST", "ws://p.example/tunnel"}, wantErr: "needs TLS", errNames: VarHost},
		{name: "https URL refused", env: []string{"PROXY_HOST", "https://p.example/"}, wantErr: "wss://", errNames: VarHost},
		{name: "bad port", env: []string{"PROXY_HOST", "wss://p.example:99999/"}, wantErr: "port", errNames: VarHost},
		{name: "no host", env: []string{"PROXY_HOST", "wss:///tunnel"}, wantErr: "not a URL", errNames: VarHost},
		{name: "query refused", env: []string{"PROXY_HOST", "wss://p.example/tunnel?a=1"}, wantErr: "path only", errNames: VarHost},
		{name: "bad host name", env: []string{"PROXY_HOST", "wss://p_!x.example/tunnel"}, wantErr: "not", errNames: VarHost},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg, err := Parse(lookupOf(tt.env...))
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) || !strings.HasPrefix(err.Error(), tt.errNames+":") {
					t.Fatalf("err = %v, want one starting %s: and containing %q", err, tt.errNames, tt.wantErr)
				}
				if v := Validate(VarHost, tt.env[1]); tt.errNames == VarHost && v == nil {
					t.Errorf("Validate(%q) accepted what Parse refused", tt.env[1])
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if cfg.Host != tt.host || cfg.Port != tt.port || cfg.WebSocketPath != tt.path {
				t.Errorf("got host %q port %d path %q, want %q %d %q", cfg.Host, cfg.Port, cfg.WebSocketPath, tt.host, tt.port, tt.path)
			}
			if err := Validate(VarHost, tt.env[1]); err != nil {
				t.Errorf("Validate: %v", err)
			}
		})
	}
}

func TestParseVia(t *testing.T) {
	tests := []struct {
		name    string
		env     []string
		want    string // Via.String(), "" for direct
		source  string
		wantErr string // substring; the error must not show the password "s3cret"
		errKey  string
	}{
		{name: "unset is direct", env: nil},
		{name: "PROXY_VIA", env: []string{"PROXY_VIA", "http://proxy.corp:3128"}, want: "http://proxy.corp:3128", source: VarVia},
		{name: "PROXY_VIA with credentials", env: []string{"PROXY_VIA", "http://u%40x:s3cret@proxy.corp:3128/"}, want: "http://u%40x:s3cret@proxy.corp:3128", source: VarVia},
		{name: "PROXY_VIA without scheme", env: []string{"PROXY_VIA", "proxy.corp:3128"}, want: "http://proxy.corp:3128", source: VarVia},
		{name: "PROXY_VIA default port", env: []string{"PROXY_VIA", "http://proxy.corp"}, want: "http://proxy.corp:80", source: VarVia},
		{name: "PROXY_VIA IPv6", env: []string{"PROXY_VIA", "http://[fd00::1]:3128"}, want: "http://[fd00::1]:3128", source: VarVia},
		{name: "PROXY_VIA none beats HTTPS_PROXY", env: []string{"PROXY_VIA", "none", "HTTPS_PROXY", "http://proxy.corp:3128"}},
		{name: "PROXY_VIA beats HTTPS_PROXY", env: []string{"PROXY_VIA", "http://a.corp:1", "HTTPS_PROXY", "http://b.corp:2"}, want: "http://a.corp:1", source: VarVia},
		{name: "HTTPS_PROXY", env: []string{"HTTPS_PROXY", "http://proxy.corp:3128"}, want: "http://proxy.corp:3128", source: VarHTTPSProxy},
		{name: "https_proxy", env: []string{"https_proxy", "proxy.corp:3128"}, want: "http://proxy.corp:3128", source: "https_proxy"},
		{name: "HTTPS_PROXY before https_proxy", env: []string{"HTTPS_PROXY", "http://a.corp:1", "https_proxy", "http://b.corp:2"}, want: "http://a.corp:1", source: VarHTTPSProxy},
		{name: "HTTP_PROXY alone does not apply", env: []string{"HTTP_PROXY", "http://proxy.corp:3128"}},
		{name: "NO_PROXY names the proxy server", env: []string{"HTTPS_PROXY", "http://proxy.corp:3128", "NO_PROXY", ".tessel.io"}},
		{name: "no_proxy star", env: []string{"HTTPS_PROXY", "http://proxy.corp:3128", "no_proxy", "*"}},
		{name: "NO_PROXY other host", env: []string{"HTTPS_PROXY", "http://proxy.corp:3128", "NO_PROXY", "example.com"}, want: "http://proxy.corp:3128", source: VarHTTPSProxy},
		{name: "loopback proxy server is never proxied", env: []string{"PROXY_HOST", "127.0.0.1", "HTTPS_PROXY", "http://proxy.corp:3128"}},
		{name: "socks5 refused", env: []string{"PROXY_VIA", "socks5://u:s3cret@proxy.corp:1080"}, wantErr: "not supported", errKey: VarVia},
		{name: "https upstream refused", env: []string{"PROXY_VIA", "https://proxy.corp:443"}, wantErr: "not supported", errKey: VarVia},
		{name: "bad port", env: []string{"PROXY_VIA", "http://u:s3cret@proxy.corp:99999"}, wantErr: "port", errKey: VarVia},
		{name: "unparsable keeps the password out", env: []string{"PROXY_VIA", "http://u:s3cret@proxy.corp:3128x"}, wantErr: "not an upstream proxy URL", errKey: VarVia},
		{name: "path refused", env: []string{"PROXY_VIA", "http://u:s3cret@proxy.corp:3128/x"}, wantErr: "no path", errKey: VarVia},
		{name: "bad HTTPS_PROXY names it", env: []string{"HTTPS_PROXY", "socks5://proxy.corp:1080"}, wantErr: "not supported", errKey: VarHTTPSProxy},
		{name: "bad HTTPS_PROXY in NO_PROXY is no matter", env: []string{"HTTPS_PROXY", "socks5://proxy.corp:1080", "NO_PROXY", "proxy.tessel.io"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg, err := Parse(lookupOf(tt.env...))
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) || !strings.HasPrefix(err.Error(), tt.errKey+":") {
					t.Fatalf("err = %v, want %s: ...%s...", err, tt.errKey, tt.wantErr)
				}
				if strings.Contains(err.Error(), "s3cret") {
					t.Errorf("the error shows the password: %v", err)
				}
				if !errors.Is(err, ErrBadConfig) {
					t.Errorf("not ErrBadConfig: %v", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			got := ""
			if cfg.Via != nil {
				got = cfg.Via.String()
			}
			if got != tt.want || cfg.ViaSource != tt.source {
				t.Errorf("Via = %q from %q, want %q from %q", got, cfg.ViaSource, tt.want, tt.source)
			}
		})
	}
}

func TestValidateVia(t *testing.T) {
	for _, v := range []string{"none", "NONE", "http://proxy.corp:3128", "http://u:p@proxy.corp:3128"} {
		if err := Validate(VarVia, v); err != nil {
			t.Errorf("Validate(%q): %v", v, err)
		}
	}
	for _, v := range []string{"ftp://proxy.corp", "http://", "http://u:s3cret@proxy.corp:0"} {
		err := Validate(VarVia, v)
		if err == nil {
			t.Errorf("Validate(%q) accepted it", v)
		} else if strings.Contains(err.Error(), "s3cret") {
			t.Errorf("Validate(%q) shows the password: %v", v, err)
		}
	}
}

func TestMaskValue(t *testing.T) {
	tests := []struct {
		key, value, want string
		masked           bool
	}{
		{VarToken, "tok", "********", true},
		{VarAPIKey, "tok", "********", true},
		{VarVia, "http://alice:s3cret@proxy.corp:3128", "http://alice:********@proxy.corp:3128", true},
		{VarVia, "alice:s3cret@proxy.corp:3128", "alice:********@proxy.corp:3128", true},
		{VarVia, "http://proxy.corp:3128", "http://proxy.corp:3128", false},
		{VarVia, "http://alice@proxy.corp:3128", "http://alice@proxy.corp:3128", false},
		{VarVia, "none", "none", false},
		{VarVia, "http://a:s3cret@pro xy:1%", "********", true},
		{VarHost, "proxy.example.net", "proxy.example.net", false},
	}
	for _, tt := range tests {
		got, masked := MaskValue(tt.key, tt.value)
		if got != tt.want || masked != tt.masked {
			t.Errorf("MaskValue(%s, %q) = %q, %v; want %q, %v", tt.key, tt.value, got, masked, tt.want, tt.masked)
		}
	}
	if !IsSecret(VarVia) {
		t.Error("IsSecret(PROXY_VIA) is false")
	}
}

// FuzzMaskValue: whatever PROXY_VIA holds, what env list shows of it never carries the
// password, and a value with credentials is always reported as masked.
func FuzzMaskValue(f *testing.F) {
	for _, s := range []string{"http://alice:s3cret@proxy.corp:3128", "alice:pw@proxy.corp:1", "none",
		"http://proxy.corp:1", "http://a:b@c@d:1", "%zz:pw@h", "http://alice:@h:1", "http://[::1]:3128", "u:p%40ss@h"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, v string) {
		shown, masked := MaskValue(VarVia, v)
		withScheme := func(s string) string {
			if !strings.Contains(s, "://") {
				return "http://" + s
			}
			return s
		}
		u, err := url.Parse(withScheme(v))
		if err != nil {
			if strings.Contains(v, "@") && !masked {
				t.Fatalf("%q does not parse, has an @, and is shown as %q", v, shown)
			}
			return
		}
		if _, has := u.User.Password(); !has {
			return
		}
		if !masked {
			t.Fatalf("%q has a password and is shown as %q unmasked", v, shown)
		}
		if u2, err := url.Parse(withScheme(shown)); err == nil {
			if p2, has := u2.User.Password(); has && p2 != maskedPassword {
				t.Fatalf("%q is shown as %q, whose password is %q", v, shown, p2)
			}
		}
	})
}
