// Package proxyconfig is the one place that knows what a PROXY_* value means: it parses and
// validates the configuration variables, applies their defaults, matches hosts against
// PROXY_LOCAL, and reads them in their lookup order (the process environment, then the
// local device's env file, then the defaults). `env set` validation, `run`, the man pages
// and completion all call into it, so they can never disagree. It runs no processes and
// knows nothing of devices; proxyclient imports it.
package proxyconfig

import (
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"math"
	"net/netip"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/tessel/tessel-proxy/internal/hostport"
)

// Lookup returns the value of a variable and whether it is set (os.LookupEnv's shape).
type Lookup func(key string) (string, bool)

// Chain returns a Lookup that asks each of ls in turn; the first that has the key wins.
// Nil entries are skipped.
func Chain(ls ...Lookup) Lookup {
	return func(key string) (string, bool) {
		for _, l := range ls {
			if l == nil {
				continue
			}
			if v, ok := l(key); ok {
				return v, true
			}
		}
		return "", false
	}
}

// MapLookup is a Lookup over a map, such as the result of ReadEnvFile.
func MapLookup(m map[string]string) Lookup {
	return func(key string) (string, bool) {
		v, ok := m[key]
		return v, ok
	}
}

// IdleNever is Config.Idle for PROXY_IDLE=Infinity/never: keep the tunnel open.
const IdleNever time.Duration = -1

// Defaults of the configuration variables.
const (
	DefaultHost  = "proxy.tessel.io"
	DefaultPort  = 443
	DefaultIdle  = 90 * time.Second
	DefaultLocal = "10.0.0.0/8 172.16.0.0/12 192.168.0.0/16 169.254.0.0/16 127.0.0.0/8 localhost"
)

// Names of the configuration variables.
const (
	VarHost    = "PROXY_HOST"
	VarPort    = "PROXY_PORT"
	VarToken   = "PROXY_TOKEN"
	VarAPIKey  = "TM_API_KEY"
	VarCert    = "PROXY_CERT"
	VarTrusted = "PROXY_TRUSTED"
	VarIdle    = "PROXY_IDLE"
	VarLocal   = "PROXY_LOCAL"
	VarDebug   = "_PROXY_DBG"
)

// Config is the parsed client configuration. The zero value is not useful; use Parse.
type Config struct {
	Host        string         // PROXY_HOST, default "proxy.tessel.io"
	Port        int            // PROXY_PORT, 1..65535, default 443
	Token       string         // PROXY_TOKEN, else TM_API_KEY; "" when neither is set
	TokenSource string         // "PROXY_TOKEN", "TM_API_KEY" or "" (which variable gave Token)
	RootCAs     *x509.CertPool // from PROXY_CERT; nil means the system roots
	Trusted     bool           // PROXY_TRUSTED
	Idle        time.Duration  // PROXY_IDLE; 0 = close when the last stream closes; IdleNever
	Local       LocalList      // PROXY_LOCAL
	Debug       bool           // _PROXY_DBG set to anything

	// WebSocketPath is set by a wss:// PROXY_HOST: the tunnel then rides one WebSocket
	// connection to this path, inside the TLS connection. "" means plain TLS.
	WebSocketPath string
	// Via is the upstream HTTP proxy the tunnel's own connection goes through (CONNECT),
	// from PROXY_VIA or else HTTPS_PROXY/NO_PROXY; nil means directly. It may hold a
	// password: show it with ShowURL.
	Via *url.URL
	// ViaSource is the variable Via came from: PROXY_VIA, HTTPS_PROXY or https_proxy.
	ViaSource string
}

// Variable describes one configuration variable, for help, man pages, completion and the
// near-miss warning of `env set`.
type Variable struct {
	Name    string
	Default string   // as a user would write it; "" when there is none
	Help    string   // one sentence
	Secret  bool     // masked by `env list` unless asked
	Values  []string // the accepted words, when the variable takes a fixed set (for completion)
}

// Variables lists every known variable, in the order of the tables generated from it (the
// manual's ENVIRONMENT, docs/reference.md and README.md).
var Variables = []Variable{
	{Name: VarHost, Default: DefaultHost, Help: "host name or IP address of the proxy server; empty means the default; wss://host[:port]/path carries the tunnel over WebSocket (through HTTP front ends)"},
	{Name: VarPort, Default: strconv.Itoa(DefaultPort), Help: "TCP port of the proxy server, 1-65535"},
	{Name: VarToken, Help: "token sent to the proxy server; takes precedence over TM_API_KEY", Secret: true},
	{Name: VarAPIKey, Help: "fallback token, used when PROXY_TOKEN is not set", Secret: true},
	{Name: VarCert, Help: "PEM text of a certificate to trust for the tunnel instead of the system roots, or the path of a PEM file on the machine that reads it"},
	{Name: VarTrusted, Default: "0", Help: "1/true/yes lets the proxy server make TLS connections on the client's behalf (it then sees plaintext); 0/false/no never", Values: []string{"1", "0", "true", "false", "yes", "no"}},
	{Name: VarIdle, Default: "90000", Help: "close the tunnel this long after its last stream closed: milliseconds (90e3), a duration (90s), 0, or Infinity/never", Values: []string{"0", "90000", "Infinity", "never"}},
	{Name: VarLocal, Default: DefaultLocal, Help: "hosts connected directly, never through the tunnel: addresses, CIDR prefixes, names and .suffixes, separated by spaces or commas; none = nothing is local", Values: []string{"none"}},
	{Name: VarVia, Help: "http://[user:password@]host:port of an upstream HTTP proxy the tunnel's own connection goes through (CONNECT); unset: HTTPS_PROXY and NO_PROXY apply; none: never", Secret: true, Values: []string{ViaNone}},
	{Name: VarDebug, Help: "any value logs tunnel and routing decisions to stderr"},
}

// IsSecret reports whether the variable named key holds a token, or may hold a password
// (PROXY_VIA). MaskValue says how `env list` shows it.
func IsSecret(key string) bool {
	return key == VarToken || key == VarAPIKey || key == VarVia
}

// VarError reports a configuration variable whose value breaks a rule. It never contains a
// token: the value is quoted in Rule only for variables that are not secret.
type VarError struct {
	Key  string // the variable, e.g. PROXY_PORT
	Rule string // what is wrong and what is accepted
}

func (e *VarError) Error() string { return e.Key + ": " + e.Rule }

// ErrBadConfig is matched (errors.Is) by every *VarError, for callers that map
// configuration errors to an exit status.
var ErrBadConfig = errors.New("bad configuration")

// Is makes errors.Is(err, ErrBadConfig) true for a *VarError.
func (e *VarError) Is(target error) bool { return target == ErrBadConfig }

func varErr(key, format string, args ...any) *VarError {
	return &VarError{Key: key, Rule: fmt.Sprintf(format, args...)}
}

// Parse reads every configuration variable from l, applies the defaults and checks each
// value. The error is the first *VarError in the order of Variables.
func Parse(l Lookup) (Config, error) {
	if l == nil {
		l = func(string) (string, bool) { return "", false }
	}
	get := func(key string) string { v, _ := l(key); return v }
	cfg := Config{Host: DefaultHost, Port: DefaultPort, Idle: DefaultIdle}
	var err error
	urlPort := 0
	if v := get(VarHost); isURL(v) {
		if cfg.Host, urlPort, cfg.WebSocketPath, err = parseHostURL(v); err != nil {
			return Config{}, err
		}
	} else if v != "" {
		if cfg.Host, err = parseHost(v); err != nil {
			return Config{}, err
		}
	}
	if v := get(VarPort); v != "" {
		if cfg.Port, err = parsePort(v); err != nil {
			return Config{}, err
		}
		if urlPort != 0 && urlPort != cfg.Port {
			return Config{}, varErr(VarPort, "%q disagrees with the port %d in PROXY_HOST; unset PROXY_PORT or make them equal", v, urlPort)
		}
	}
	if urlPort != 0 {
		cfg.Port = urlPort
	}
	// Only the token in use is checked: a stale TM_API_KEY behind a good PROXY_TOKEN is
	// never sent, so it must not stop the program.
	for _, key := range []string{VarToken, VarAPIKey} {
		if v := get(key); v != "" {
			if err := checkToken(key, v); err != nil {
				return Config{}, err
			}
			cfg.Token, cfg.TokenSource = v, key
			break
		}
	}
	if v := get(VarCert); v != "" {
		if cfg.RootCAs, err = parseCert(v, true); err != nil {
			return Config{}, err
		}
	}
	if v := get(VarTrusted); v != "" {
		if cfg.Trusted, err = parseTrusted(v); err != nil {
			return Config{}, err
		}
	}
	if v := get(VarIdle); v != "" {
		if cfg.Idle, err = parseIdle(v); err != nil {
			return Config{}, err
		}
	}
	if cfg.Local, err = ParseLocal(get(VarLocal)); err != nil {
		return Config{}, err
	}
	if cfg.Via, cfg.ViaSource, err = upstreamFor(get, cfg.Host, cfg.Port); err != nil {
		return Config{}, err
	}
	_, cfg.Debug = l(VarDebug)
	return cfg, nil
}

// Validate applies to one variable the rules Parse applies. Keys that are not configuration
// variables are accepted. An empty value is accepted wherever Parse treats it as the default.
// A PROXY_CERT path is read on this machine; use ValidateRemote for a value that another
// machine will read.
func Validate(key, value string) error {
	return validate(key, value, true)
}

// ValidateRemote is Validate for a value stored on another device: a PROXY_CERT path names a
// file on that device, so it is not read here (PEM text is still checked).
func ValidateRemote(key, value string) error {
	return validate(key, value, false)
}

func validate(key, value string, readCertFile bool) error {
	if value == "" {
		return nil
	}
	var err error
	switch key {
	case VarHost:
		if isURL(value) {
			_, _, _, err = parseHostURL(value)
		} else {
			_, err = parseHost(value)
		}
	case VarVia:
		_, _, err = parseVia(value)
	case VarPort:
		_, err = parsePort(value)
	case VarToken, VarAPIKey:
		err = checkToken(key, value)
	case VarCert:
		_, err = parseCert(value, readCertFile)
	case VarTrusted:
		_, err = parseTrusted(value)
	case VarIdle:
		_, err = parseIdle(value)
	case VarLocal:
		_, err = ParseLocal(value)
	}
	return err
}

// ParseLayered reads the configuration in its lookup order: env first, then file (the
// variables of the device's env file, read from filePath), then the defaults. An error about a
// value that came from the file names the file, so the user knows where to fix it.
func ParseLayered(env Lookup, file map[string]string, filePath string) (Config, error) {
	if env == nil {
		env = os.LookupEnv
	}
	cfg, err := Parse(Chain(env, MapLookup(file)))
	if err != nil {
		var ve *VarError
		if errors.As(err, &ve) {
			if _, inEnv := env(ve.Key); !inEnv && filePath != "" {
				return Config{}, &VarError{Key: ve.Key, Rule: ve.Rule + " (set in " + filePath + ")"}
			}
		}
		return Config{}, err
	}
	return cfg, nil
}

// ConfigDir returns ${XDG_CONFIG_HOME:-$HOME/.config}/tessel-proxy as env describes it.
func ConfigDir(env Lookup) (string, error) {
	return baseDir(env, "XDG_CONFIG_HOME", ".config", "configuration")
}

// StateDir returns ${XDG_STATE_HOME:-$HOME/.local/state}/tessel-proxy as env describes it:
// files a program makes for itself and keeps, such as the dev server's certificate.
func StateDir(env Lookup) (string, error) {
	return baseDir(env, "XDG_STATE_HOME", filepath.Join(".local", "state"), "state")
}

// baseDir is the tessel-proxy directory under the XDG base directory named by xdgVar, else
// under $HOME/underHome: the one lookup behind ConfigDir and StateDir.
func baseDir(env Lookup, xdgVar, underHome, what string) (string, error) {
	if env == nil {
		env = os.LookupEnv
	}
	// The XDG spec says a relative base directory is invalid and must be ignored.
	if x, _ := env(xdgVar); x != "" && filepath.IsAbs(x) {
		return filepath.Join(x, "tessel-proxy"), nil
	}
	home, _ := env("HOME")
	if home == "" {
		home, _ = env("USERPROFILE") // Windows
	}
	if home == "" {
		return "", fmt.Errorf("cannot find the %s directory: set HOME or %s", what, xdgVar)
	}
	return filepath.Join(home, underHome, "tessel-proxy"), nil
}

// DefaultEnvPath returns ${XDG_CONFIG_HOME:-$HOME/.config}/tessel-proxy/env, the env file of
// the local device.
func DefaultEnvPath(env Lookup) (string, error) {
	dir, err := ConfigDir(env)
	if err != nil {
		return "", err
	}
	return filepath.Join(dir, "env"), nil
}

// isURL reports whether a PROXY_HOST value is written as a URL.
func isURL(v string) bool { return strings.Contains(v, "://") }

func parseHost(v string) (string, error) {
	// An IPv6 literal may come in brackets, as in a URL; the brackets are not part of it.
	if h, ok := hostport.Unbracket(v); ok {
		if a, err := netip.ParseAddr(h); err == nil && a.Is6() {
			return a.String(), nil
		}
	}
	if _, err := netip.ParseAddr(v); err == nil {
		return v, nil
	}
	switch {
	case strings.Contains(v, "://"):
		return "", varErr(VarHost, "%q is a URL; give only the host name (the port goes in PROXY_PORT), or wss://host[:port]/path", v)
	case strings.Contains(v, ":"):
		return "", varErr(VarHost, "%q has a port or is not an address; give only the host name and put the port in PROXY_PORT", v)
	case !validHostName(v):
		return "", varErr(VarHost, "%q is not a host name or IP address", v)
	}
	return v, nil
}

var hostNameRE = regexp.MustCompile(`^[A-Za-z0-9_]([A-Za-z0-9_-]*[A-Za-z0-9_])?(\.[A-Za-z0-9_]([A-Za-z0-9_-]*[A-Za-z0-9_])?)*\.?$`)

func validHostName(s string) bool {
	return len(s) <= 254 && hostNameRE.MatchString(s)
}

func parsePort(v string) (int, error) {
	s := strings.TrimSpace(v)
	n, ok := hostport.ParsePort(s)
	if !ok {
		return 0, varErr(VarPort, "%q is not a TCP port; use a whole number from 1 to 65535", v)
	}
	return int(n), nil
}

func checkToken(key, v string) error {
	for _, r := range v {
		if r < 0x20 || r == 0x7f {
			return varErr(key, "the token contains a line break or control character; a token is one line (check for a trailing newline)")
		}
	}
	if strings.TrimSpace(v) != v {
		return varErr(key, "the token starts or ends with white space; remove it")
	}
	return nil
}

// parseCert returns the pool of the certificates in PEM text v or, when v does not start with
// -----BEGIN, in the file v names. With readFile false a path is accepted unread.
func parseCert(v string, readFile bool) (*x509.CertPool, error) {
	text := []byte(v)
	source := "the PEM text"
	if !strings.HasPrefix(strings.TrimLeft(v, " \t\r\n"), "-----BEGIN") {
		if !readFile {
			return nil, nil
		}
		b, err := os.ReadFile(v)
		if err != nil {
			if errors.Is(err, os.ErrNotExist) {
				return nil, varErr(VarCert, "certificate file %q does not exist; give the path of a PEM file or the PEM text itself", v)
			}
			return nil, varErr(VarCert, "cannot read certificate file: %v", err)
		}
		text, source = b, fmt.Sprintf("file %q", v)
	}
	pool := x509.NewCertPool()
	n := 0
	for {
		var block *pem.Block
		block, text = pem.Decode(text)
		if block == nil {
			break
		}
		if block.Type != "CERTIFICATE" {
			continue
		}
		cert, err := x509.ParseCertificate(block.Bytes)
		if err != nil {
			return nil, varErr(VarCert, "%s holds a CERTIFICATE block that does not parse: %v", source, err)
		}
		pool.AddCert(cert)
		n++
	}
	if n == 0 {
		return nil, varErr(VarCert, "%s holds no PEM certificate (expected -----BEGIN CERTIFICATE-----)", source)
	}
	return pool, nil
}

func parseTrusted(v string) (bool, error) {
	switch strings.ToLower(strings.TrimSpace(v)) {
	case "1", "true", "yes":
		return true, nil
	case "0", "false", "no":
		return false, nil
	}
	return false, varErr(VarTrusted, "%q is not a yes/no value; use 1, true or yes to trust the proxy with TLS, 0, false or no not to", v)
}

// jsNumber is the decimal subset of JavaScript's Number() (90e3, 1.5, +90000): the forms a
// count of milliseconds in PROXY_IDLE may take, as clients written in JavaScript read it.
var jsNumber = regexp.MustCompile(`^\+?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$`)

func parseIdle(v string) (time.Duration, error) {
	s := strings.TrimSpace(v)
	switch strings.ToLower(s) {
	case "infinity", "+infinity", "never":
		return IdleNever, nil
	}
	bad := func() (time.Duration, error) {
		return 0, varErr(VarIdle, "%q is not a time; use milliseconds (90000 or 90e3), a duration (90s, 5m), 0 to close at once, or Infinity/never to keep the tunnel open", v)
	}
	if jsNumber.MatchString(s) {
		ms, err := strconv.ParseFloat(s, 64)
		if err != nil && !errors.Is(err, strconv.ErrRange) {
			return bad()
		}
		if ms*float64(time.Millisecond) >= math.MaxInt64 || math.IsInf(ms, 0) {
			return 0, varErr(VarIdle, "%q is too long; use Infinity or never to keep the tunnel open", v)
		}
		return time.Duration(ms * float64(time.Millisecond)), nil
	}
	d, err := time.ParseDuration(s)
	if err != nil || d < 0 || strings.HasPrefix(s, "-") {
		return bad()
	}
	return d, nil
}
