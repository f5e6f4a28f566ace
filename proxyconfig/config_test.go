package proxyconfig

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tessel/tessel-proxy/internal/testcert"
)

// testCertPEM returns a freshly generated self-signed certificate in PEM form.
func testCertPEM(t *testing.T) string { return string(testcert.New(t).PEM) }

func lookupOf(kv ...string) Lookup {
	m := map[string]string{}
	for i := 0; i < len(kv); i += 2 {
		m[kv[i]] = kv[i+1]
	}
	return MapLookup(m)
}

func TestParseDefaults(t *testing.T) {
	cfg, err := Parse(lookupOf())
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Host != "proxy.tessel.io" || cfg.Port != 443 || cfg.Token != "" || cfg.TokenSource != "" ||
		cfg.RootCAs != nil || cfg.Trusted || cfg.Idle != 90*time.Second || cfg.Debug {
		t.Errorf("defaults: got %+v", cfg)
	}
	if got := strings.Join(cfg.Local.Entries(), " "); got != DefaultLocal {
		t.Errorf("default PROXY_LOCAL = %q, want %q", got, DefaultLocal)
	}
}

func TestParse(t *testing.T) {
	certPEM := testCertPEM(t)
	dir := t.TempDir()
	certFile := filepath.Join(dir, "ca cert.pem")
	if err := os.WriteFile(certFile, []byte(certPEM), 0o600); err != nil {
		t.Fatal(err)
	}
	notPEM := filepath.Join(dir, "not.pem")
	if err := os.WriteFile(notPEM, []byte("hello"), 0o600); err != nil {
		t.Fatal(err)
	}

	tests := []struct {
		name    string
		env     []string
		check   func(Config) bool
		wantErr string // substring of the error; the error must also name the variable
	}{
		{"host empty is default", []string{"PROXY_HOST", ""}, func(c Config) bool { return c.Host == "proxy.tessel.io" }, ""},
		{"host name", []string{"PROXY_HOST", "proxy.example.net"}, func(c Config) bool { return c.Host == "proxy.example.net" }, ""},
		{"host IPv6 in brackets", []string{"PROXY_HOST", "[2001:db8::1]"}, func(c Config) bool { return c.Host == "2001:db8::1" }, ""},
		{"host with port rejected", []string{"PROXY_HOST", "proxy.example.net:8443"}, nil, "PROXY_PORT"},
		{"host URL rejected", []string{"PROXY_HOST", "https://proxy.example.net"}, nil, "URL"},
		{"host with space rejected", []string{"PROXY_HOST", "a b"}, nil, "not a host name"},

		{"port", []string{"PROXY_PORT", "8443"}, func(c Config) bool { return c.Port == 8443 }, ""},
		{"port 1", []string{"PROXY_PORT", "1"}, func(c Config) bool { return c.Port == 1 }, ""},
		{"port 65535", []string{"PROXY_PORT", "65535"}, func(c Config) bool { return c.Port == 65535 }, ""},
		// Not a silent fall back to 443: an error that names the variable.
		{"port 0", []string{"PROXY_PORT", "0"}, nil, "1 to 65535"},
		{"port 65536", []string{"PROXY_PORT", "65536"}, nil, "1 to 65535"},
		{"port negative", []string{"PROXY_PORT", "-1"}, nil, "1 to 65535"},
		{"port word", []string{"PROXY_PORT", "https"}, nil, "1 to 65535"},
		{"port empty is default", []string{"PROXY_PORT", ""}, func(c Config) bool { return c.Port == 443 }, ""},

		{"PROXY_TOKEN beats TM_API_KEY", []string{"PROXY_TOKEN", "tok", "TM_API_KEY", "key"},
			func(c Config) bool { return c.Token == "tok" && c.TokenSource == "PROXY_TOKEN" }, ""},
		{"TM_API_KEY alone", []string{"TM_API_KEY", "key"},
			func(c Config) bool { return c.Token == "key" && c.TokenSource == "TM_API_KEY" }, ""},
		{"empty PROXY_TOKEN falls back to TM_API_KEY", []string{"PROXY_TOKEN", "", "TM_API_KEY", "key"},
			func(c Config) bool { return c.Token == "key" && c.TokenSource == "TM_API_KEY" }, ""},
		{"token with trailing newline", []string{"PROXY_TOKEN", "s3cret\n"}, nil, "line break"},
		{"unused TM_API_KEY is not checked", []string{"PROXY_TOKEN", "tok", "TM_API_KEY", "bad\n"},
			func(c Config) bool { return c.TokenSource == "PROXY_TOKEN" }, ""},

		{"cert PEM text", []string{"PROXY_CERT", certPEM}, func(c Config) bool { return c.RootCAs != nil }, ""},
		{"cert file with space in path", []string{"PROXY_CERT", certFile}, func(c Config) bool { return c.RootCAs != nil }, ""},
		{"cert missing file", []string{"PROXY_CERT", filepath.Join(dir, "nope.pem")}, nil, "does not exist"},
		{"cert file not PEM", []string{"PROXY_CERT", notPEM}, nil, "no PEM certificate"},
		{"cert bad PEM text", []string{"PROXY_CERT", "-----BEGIN CERTIFICATE-----\nnot base64\n-----END CERTIFICATE-----\n"}, nil, "no PEM certificate"},
		{"cert PEM block that is no certificate", []string{"PROXY_CERT", "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"}, nil, "does not parse"},

		{"trusted 1", []string{"PROXY_TRUSTED", "1"}, func(c Config) bool { return c.Trusted }, ""},
		// "true" is true, not a number that is not 1.
		{"trusted true", []string{"PROXY_TRUSTED", "true"}, func(c Config) bool { return c.Trusted }, ""},
		{"trusted YES", []string{"PROXY_TRUSTED", "YES"}, func(c Config) bool { return c.Trusted }, ""},
		{"trusted 0", []string{"PROXY_TRUSTED", "0"}, func(c Config) bool { return !c.Trusted }, ""},
		{"trusted False", []string{"PROXY_TRUSTED", "False"}, func(c Config) bool { return !c.Trusted }, ""},
		{"trusted no", []string{"PROXY_TRUSTED", "no"}, func(c Config) bool { return !c.Trusted }, ""},
		{"trusted garbage", []string{"PROXY_TRUSTED", "maybe"}, nil, "yes/no"},
		{"trusted 2", []string{"PROXY_TRUSTED", "2"}, nil, "yes/no"},

		{"idle ms", []string{"PROXY_IDLE", "1000"}, func(c Config) bool { return c.Idle == time.Second }, ""},
		{"idle JS exponent", []string{"PROXY_IDLE", "90e3"}, func(c Config) bool { return c.Idle == 90*time.Second }, ""},
		{"idle fraction", []string{"PROXY_IDLE", "1.5"}, func(c Config) bool { return c.Idle == 1500*time.Microsecond }, ""},
		// 0 and Infinity mean what they say, not the default (as +"0" || 90e3 would).
		{"idle 0", []string{"PROXY_IDLE", "0"}, func(c Config) bool { return c.Idle == 0 }, ""},
		{"idle Infinity", []string{"PROXY_IDLE", "Infinity"}, func(c Config) bool { return c.Idle == IdleNever }, ""},
		{"idle never", []string{"PROXY_IDLE", "never"}, func(c Config) bool { return c.Idle == IdleNever }, ""},
		{"idle Go duration", []string{"PROXY_IDLE", "90s"}, func(c Config) bool { return c.Idle == 90*time.Second }, ""},
		{"idle 0s", []string{"PROXY_IDLE", "0s"}, func(c Config) bool { return c.Idle == 0 }, ""},
		{"idle negative", []string{"PROXY_IDLE", "-5"}, nil, "not a time"},
		{"idle negative duration", []string{"PROXY_IDLE", "-5s"}, nil, "not a time"},
		{"idle garbage", []string{"PROXY_IDLE", "soon"}, nil, "not a time"},
		{"idle hex is not accepted", []string{"PROXY_IDLE", "0x10"}, nil, "not a time"},
		{"idle too long", []string{"PROXY_IDLE", "1e300"}, nil, "never"},

		{"local none", []string{"PROXY_LOCAL", "none"}, func(c Config) bool { return len(c.Local.Entries()) == 0 }, ""},
		{"local empty is default", []string{"PROXY_LOCAL", ""}, func(c Config) bool { return len(c.Local.Entries()) == 6 }, ""},
		{"local bad prefix", []string{"PROXY_LOCAL", "10.0.0.0/33"}, nil, "CIDR"},

		{"debug any value", []string{"_PROXY_DBG", "1"}, func(c Config) bool { return c.Debug }, ""},
		{"debug empty value still set", []string{"_PROXY_DBG", ""}, func(c Config) bool { return c.Debug }, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg, err := Parse(lookupOf(tt.env...))
			if tt.wantErr != "" {
				if err == nil {
					t.Fatalf("Parse(%q) succeeded, want error containing %q", tt.env, tt.wantErr)
				}
				var ve *VarError
				if !errors.As(err, &ve) || ve.Key != tt.env[0] || !errors.Is(err, ErrBadConfig) {
					t.Errorf("error %q does not name %s as a *VarError", err, tt.env[0])
				}
				if !strings.Contains(err.Error(), tt.wantErr) || !strings.HasPrefix(err.Error(), tt.env[0]+": ") {
					t.Errorf("error = %q, want it to start with %s and mention %q", err, tt.env[0], tt.wantErr)
				}
				// Validate must agree with Parse, so `env set` and `run` never disagree.
				if Validate(tt.env[0], tt.env[1]) == nil {
					t.Errorf("Validate(%s, %q) accepted what Parse rejects", tt.env[0], tt.env[1])
				}
				return
			}
			if err != nil {
				t.Fatalf("Parse(%q): %v", tt.env, err)
			}
			if !tt.check(cfg) {
				t.Errorf("Parse(%q) = %+v, not what was expected", tt.env, cfg)
			}
			if err := Validate(tt.env[0], tt.env[1]); err != nil {
				t.Errorf("Validate(%s) rejected what Parse accepts: %v", tt.env[0], err)
			}
		})
	}
}

func TestTokenNeverInErrors(t *testing.T) {
	for _, key := range []string{"PROXY_TOKEN", "TM_API_KEY"} {
		for _, v := range []string{"very-secret\n", " very-secret", "very\x00secret"} {
			err := Validate(key, v)
			if err == nil {
				t.Fatalf("Validate(%s, %q) accepted a malformed token", key, v)
			}
			if strings.Contains(err.Error(), "secret") {
				t.Errorf("error echoes the token: %q", err)
			}
		}
	}
}

func TestValidateRemoteCertPath(t *testing.T) {
	// A path names a file on the device: it is not read here.
	if err := ValidateRemote("PROXY_CERT", "/etc/tessel/ca.pem"); err != nil {
		t.Errorf("ValidateRemote(path) = %v, want nil", err)
	}
	if err := Validate("PROXY_CERT", "/nonexistent/ca.pem"); err == nil {
		t.Error("Validate(missing local path) = nil, want error")
	}
	if err := ValidateRemote("PROXY_CERT", "-----BEGIN CERTIFICATE-----\nxx\n-----END CERTIFICATE-----\n"); err == nil {
		t.Error("ValidateRemote(bad PEM text) = nil, want error")
	}
	if err := Validate("SOMETHING_ELSE", "anything"); err != nil {
		t.Errorf("unknown keys are accepted, got %v", err)
	}
}

func TestChain(t *testing.T) {
	l := Chain(nil, lookupOf("A", "env"), lookupOf("A", "file", "B", "file"))
	if v, _ := l("A"); v != "env" {
		t.Errorf("A = %q, want the first lookup's value", v)
	}
	if v, _ := l("B"); v != "file" {
		t.Errorf("B = %q, want the second lookup's value", v)
	}
	if _, ok := l("C"); ok {
		t.Error("C found in no lookup but reported set")
	}
	// Set-but-empty in the environment still wins over the file (first found wins).
	l = Chain(lookupOf("PROXY_HOST", ""), lookupOf("PROXY_HOST", "file.example"))
	if cfg, _ := Parse(l); cfg.Host != DefaultHost {
		t.Errorf("Host = %q, want the default for an empty environment value", cfg.Host)
	}
}

func TestDefaultEnvPath(t *testing.T) {
	tests := []struct {
		env  []string
		want string
	}{
		{[]string{"HOME", "/home/u"}, "/home/u/.config/tessel-proxy/env"},
		{[]string{"HOME", "/home/u", "XDG_CONFIG_HOME", "/x"}, "/x/tessel-proxy/env"},
		{[]string{"HOME", "/home/u", "XDG_CONFIG_HOME", ""}, "/home/u/.config/tessel-proxy/env"},
		// The XDG spec: a relative XDG_CONFIG_HOME is ignored.
		{[]string{"HOME", "/home/u", "XDG_CONFIG_HOME", "rel"}, "/home/u/.config/tessel-proxy/env"},
	}
	for _, tt := range tests {
		got, err := DefaultEnvPath(lookupOf(tt.env...))
		if err != nil || got != tt.want {
			t.Errorf("DefaultEnvPath(%q) = %q, %v; want %q", tt.env, got, err, tt.want)
		}
	}
	if _, err := DefaultEnvPath(lookupOf()); err == nil || !strings.Contains(err.Error(), "HOME") {
		t.Errorf("without HOME: %v, want an error that says to set HOME", err)
	}
}

func TestVariables(t *testing.T) {
	want := []string{"PROXY_HOST", "PROXY_PORT", "PROXY_TOKEN", "TM_API_KEY", "PROXY_CERT",
		"PROXY_TRUSTED", "PROXY_IDLE", "PROXY_LOCAL", "PROXY_VIA", "_PROXY_DBG"}
	var got []string
	for _, v := range Variables {
		got = append(got, v.Name)
		if v.Help == "" {
			t.Errorf("%s has no help", v.Name)
		}
		if v.Secret != IsSecret(v.Name) {
			t.Errorf("%s: Secret = %v", v.Name, v.Secret)
		}
		if v.Default != "" {
			if err := Validate(v.Name, v.Default); err != nil {
				t.Errorf("%s default %q does not validate: %v", v.Name, v.Default, err)
			}
		}
		for _, w := range v.Values {
			if err := Validate(v.Name, w); err != nil {
				t.Errorf("%s completion value %q does not validate: %v", v.Name, w, err)
			}
		}
	}
	if strings.Join(got, " ") != strings.Join(want, " ") {
		t.Errorf("Variables = %v, want %v", got, want)
	}
}

func TestConfigDir(t *testing.T) {
	for _, tc := range []struct {
		env  []string
		want string
	}{
		{[]string{"XDG_CONFIG_HOME", "/cfg", "HOME", "/home/u"}, "/cfg/tessel-proxy"},
		{[]string{"XDG_CONFIG_HOME", "relative", "HOME", "/home/u"}, "/home/u/.config/tessel-proxy"},
		{[]string{"HOME", "/home/u"}, "/home/u/.config/tessel-proxy"},
		{[]string{"USERPROFILE", "/users/u"}, "/users/u/.config/tessel-proxy"},
	} {
		got, err := ConfigDir(lookupOf(tc.env...))
		if err != nil || got != tc.want {
			t.Errorf("ConfigDir(%v) = %q, %v, want %q", tc.env, got, err, tc.want)
		}
	}
	if _, err := ConfigDir(lookupOf()); err == nil || !strings.Contains(err.Error(), "HOME") {
		t.Errorf("with neither HOME nor XDG_CONFIG_HOME: %v, want an error naming HOME", err)
	}
}

func TestStateDir(t *testing.T) {
	for _, tc := range []struct {
		env  []string
		want string
	}{
		{[]string{"XDG_STATE_HOME", "/state", "HOME", "/home/u"}, "/state/tessel-proxy"},
		{[]string{"XDG_STATE_HOME", "relative", "HOME", "/home/u"}, "/home/u/.local/state/tessel-proxy"},
		{[]string{"XDG_CONFIG_HOME", "/cfg", "HOME", "/home/u"}, "/home/u/.local/state/tessel-proxy"},
	} {
		got, err := StateDir(lookupOf(tc.env...))
		if err != nil || got != tc.want {
			t.Errorf("StateDir(%v) = %q, %v, want %q", tc.env, got, err, tc.want)
		}
	}
	if _, err := StateDir(lookupOf()); err == nil || !strings.Contains(err.Error(), "XDG_STATE_HOME") {
		t.Errorf("with neither HOME nor XDG_STATE_HOME: %v, want an error naming XDG_STATE_HOME", err)
	}
}
