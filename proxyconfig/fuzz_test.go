package proxyconfig

import (
	"errors"
	"net/netip"
	"strings"
	"testing"
)

// FuzzParse gives every PROXY_* variable a fuzzed value (the fields of one input, split at
// NUL) and parses them as `run` does. Parse must never panic; whatever it accepts, Validate
// (what `env set` checks) accepts value by value, and whatever it refuses it refuses with a
// *VarError that names a variable. PROXY_CERT gets the value only when it is PEM text: a path
// would make the fuzzer read files of this machine.
func FuzzParse(f *testing.F) {
	for _, seed := range []string{
		"proxy.example.net\x00443\x00tok\x00\x001\x0090e3\x0010.0.0.0/8 localhost",
		"[::1]\x0065535\x00\x00key\x00\x00no\x00Infinity\x00none",
		"wss://proxy.example.net/tunnel\x000\x00 tok\x00\x00\x00maybe\x00-1\x00*.example.net",
		"host:443\x00+80\x00a\nb\x00\x00\x00TRUE\x001e400\x00::ffff:10.0.0.0/104,.corp.example",
		"wss://proxy.example.net:8443/tunnel\x00443",
		"proxy.example.net\x00\x00t\x00\x00\x00\x00\x00\x00http://alice:pw@proxy.corp:3128",
		"\x00\x00t\x00\x00\x00\x00\x00\x00socks5://proxy.corp:1080",
		"\x00\x00\x00\x00-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\x00yes\x0090s\x00fe80::1%eth0",
	} {
		f.Add(seed)
	}
	keys := []string{VarHost, VarPort, VarToken, VarAPIKey, VarCert, VarTrusted, VarIdle, VarLocal, VarVia}
	f.Fuzz(func(t *testing.T, in string) {
		fields := strings.SplitN(in, "\x00", len(keys))
		env := map[string]string{}
		for i, v := range fields {
			if keys[i] == VarCert && !strings.HasPrefix(strings.TrimLeft(v, " \t\r\n"), "-----BEGIN") {
				continue
			}
			env[keys[i]] = v
		}
		cfg, err := Parse(MapLookup(env))
		if err != nil {
			var ve *VarError
			if !errors.As(err, &ve) || !errors.Is(err, ErrBadConfig) || ve.Key == "" {
				t.Fatalf("Parse error %v (%T): want a *VarError naming the variable", err, err)
			}
			// A port in a wss:// PROXY_HOST and PROXY_PORT must agree: a rule between two
			// variables, which Validate, judging one value, cannot apply.
			between := ve.Key == VarPort && isURL(env[VarHost])
			if Validate(ve.Key, env[ve.Key]) == nil && ve.Key != VarAPIKey && !between {
				t.Fatalf("Parse refused %s=%q (%v), Validate accepts it", ve.Key, env[ve.Key], err)
			}
			return
		}
		for k, v := range env {
			if err := Validate(k, v); err != nil && !(k == VarAPIKey && env[VarToken] != "") {
				t.Fatalf("Parse accepted %s=%q, Validate refuses it: %v", k, v, err)
			}
		}
		if cfg.Port < 1 || cfg.Port > 65535 {
			t.Fatalf("port %d accepted", cfg.Port)
		}
		if cfg.Idle < 0 && cfg.Idle != IdleNever {
			t.Fatalf("idle %v accepted", cfg.Idle)
		}
	})
}

// FuzzLocal parses a fuzzed PROXY_LOCAL and matches a fuzzed host against it. Nothing may
// panic; the list must read back from its String; a match names one of its entries; every
// address, name and suffix entry matches itself, and every prefix its own address; and a host
// name (not an IP literal) never matches an address or prefix.
func FuzzLocal(f *testing.F) {
	for _, seed := range [][2]string{
		{DefaultLocal, "10.1.2.3"},
		{"none", "localhost"},
		{".example.net, 192.168.0.255/4 [::1]", "a.example.net"},
		{".example.net", "badexample.net"},
		{"::ffff:10.0.0.0/104 fe80::1%eth0", "[fe80::1%eth1]"},
		{"0.0.0.0/0", "example.com"},
		{"Example.NET.", "example.net."},
		{"*.example.net", "a.example.net"},
		{"http://x", "x"},
		{"1.2.3.4.", "1.2.3.4"},
	} {
		f.Add(seed[0], seed[1])
	}
	f.Fuzz(func(t *testing.T, list, host string) {
		l, err := ParseLocal(list)
		if err != nil {
			if !errors.Is(err, ErrBadConfig) {
				t.Fatalf("ParseLocal error %v: want a *VarError", err)
			}
			return
		}
		again, err := ParseLocal(l.String())
		if err != nil || again.String() != l.String() {
			t.Fatalf("String %q does not read back: %v, %q", l.String(), err, again.String())
		}
		for _, e := range l.entries {
			probe := e.text
			if e.kind == kindPrefix {
				probe = e.prefix.Addr().String()
			}
			if _, ok := l.Match(probe); !ok {
				t.Fatalf("entry %q does not match %q", e.text, probe)
			}
		}
		entry, ok := l.Match(host)
		if !ok {
			return
		}
		found := false
		for _, e := range l.entries {
			if e.text == entry {
				found = true
				if _, err := netip.ParseAddr(unbracket(host)); err != nil && (e.kind == kindAddr || e.kind == kindPrefix) {
					t.Fatalf("host name %q matched the address entry %q", host, entry)
				}
			}
		}
		if !found {
			t.Fatalf("Match(%q) named %q, not an entry of %q", host, entry, l.String())
		}
	})
}
