package proxyconfig

import (
	"net"
	"net/url"
	"strconv"
	"strings"

	"golang.org/x/net/http/httpproxy"

	"github.com/tessel/tessel-proxy/wire"
)

// Names of the variables that decide how the tunnel's own connection leaves this machine.
// The HTTPS_PROXY family is read as Go's http.ProxyFromEnvironment reads it, upper case
// first.
const (
	VarVia          = "PROXY_VIA"
	VarHTTPSProxy   = "HTTPS_PROXY"
	varHTTPSProxyLC = "https_proxy"
	VarNoProxy      = "NO_PROXY"
	varNoProxyLC    = "no_proxy"
)

// ViaNone is the PROXY_VIA value that makes the tunnel's connection direct even when
// HTTPS_PROXY is set.
const ViaNone = "none"

// DefaultWebSocketPath is the path of a wss:// PROXY_HOST that gives none: the one `serve`
// takes WebSocket tunnels at by default.
const DefaultWebSocketPath = wire.DefaultWebSocketPath

// maskedPassword stands in for the password of an upstream proxy URL wherever it is shown.
const maskedPassword = "********"

// parseHostURL reads a PROXY_HOST given as wss://host[:port][/path]: the host, the port (0
// when the URL has none) and the path (DefaultWebSocketPath when it has none).
func parseHostURL(v string) (host string, port int, path string, err error) {
	u, perr := url.Parse(v)
	if perr != nil || u.Host == "" {
		return "", 0, "", varErr(VarHost, "%q is not a URL of the form wss://host[:port]/path", v)
	}
	switch strings.ToLower(u.Scheme) {
	case "wss":
	case "ws":
		return "", 0, "", varErr(VarHost, "%q: the tunnel over WebSocket needs TLS: use wss://", v)
	default:
		return "", 0, "", varErr(VarHost, "%q is a URL; give the host name alone (the port goes in PROXY_PORT), or wss://host[:port]/path for the tunnel over WebSocket", v)
	}
	if u.User != nil || u.RawQuery != "" || u.Fragment != "" {
		shown, _ := maskURLPassword(u.String())
		return "", 0, "", varErr(VarHost, "%q: a wss:// PROXY_HOST takes a host, a port and a path only", shown)
	}
	if host, err = parseHost(u.Hostname()); err != nil {
		return "", 0, "", varErr(VarHost, "%q: %q is not a host name or IP address", v, u.Hostname())
	}
	if p := u.Port(); p != "" {
		if port, err = parsePort(p); err != nil {
			return "", 0, "", varErr(VarHost, "%q: port %q is not a number from 1 to 65535", v, p)
		}
	} else if strings.HasSuffix(u.Host, ":") {
		return "", 0, "", varErr(VarHost, "%q: empty port", v)
	}
	path = u.EscapedPath()
	if path == "" {
		path = DefaultWebSocketPath
	}
	return host, port, path, nil
}

// parseVia reads PROXY_VIA: nil and none=true for "none", else the http:// URL of the
// upstream proxy, its port filled in (80 when it has none, as Go does). Errors never show
// the password.
func parseVia(v string) (u *url.URL, none bool, err error) {
	if strings.EqualFold(strings.TrimSpace(v), ViaNone) {
		return nil, true, nil
	}
	u, err = parseUpstreamURL(VarVia, v)
	return u, false, err
}

// parseUpstreamURL checks the URL of an upstream HTTP proxy named by key. httpproxy
// accepts "host:port" without a scheme as http://, and so do we.
func parseUpstreamURL(key, v string) (*url.URL, error) {
	s := strings.TrimSpace(v)
	if !strings.Contains(s, "://") {
		s = "http://" + s
	}
	const want = "want http://[user:password@]host:port"
	u, err := url.Parse(s)
	if err != nil || u.Host == "" || u.Hostname() == "" {
		// url.Parse's error quotes the whole value, password included: say it in our words.
		return nil, varErr(key, "not an upstream proxy URL; %s", want)
	}
	shown, _ := maskURLPassword(u.String())
	switch strings.ToLower(u.Scheme) {
	case "http":
	case "https", "socks5", "socks5h", "socks4":
		return nil, varErr(key, "%q: a %s:// upstream proxy is not supported for the tunnel; %s (or PROXY_VIA=none)", shown, u.Scheme, want)
	default:
		return nil, varErr(key, "%q: unknown scheme %q; %s", shown, u.Scheme, want)
	}
	if (u.Path != "" && u.Path != "/") || u.RawQuery != "" || u.Fragment != "" {
		return nil, varErr(key, "%q: an upstream proxy URL has no path or query; %s", shown, want)
	}
	if _, err := parseHost(u.Hostname()); err != nil {
		return nil, varErr(key, "%q: %q is not a host name or IP address", shown, u.Hostname())
	}
	port := u.Port()
	switch {
	case port == "" && strings.HasSuffix(u.Host, ":"):
		return nil, varErr(key, "%q: empty port; %s", shown, want)
	case port == "":
		port = "80"
	default:
		if _, err := parsePort(port); err != nil {
			return nil, varErr(key, "%q: port %q is not a number from 1 to 65535", shown, port)
		}
	}
	return &url.URL{Scheme: "http", User: u.User, Host: net.JoinHostPort(u.Hostname(), port)}, nil
}

// upstreamFor decides how the tunnel's connection to host:port leaves this machine: the
// upstream proxy URL (nil: directly) and the variable that said so. PROXY_VIA wins;
// unset or empty, HTTPS_PROXY/https_proxy and NO_PROXY/no_proxy apply as in Go's
// http.ProxyFromEnvironment (loopback and localhost are never proxied).
func upstreamFor(get func(string) string, host string, port int) (*url.URL, string, error) {
	if v := get(VarVia); v != "" {
		u, none, err := parseVia(v)
		if none || err != nil {
			return nil, "", err
		}
		return u, VarVia, nil
	}
	key := VarHTTPSProxy
	proxy := get(key)
	if proxy == "" {
		key = varHTTPSProxyLC
		proxy = get(key)
	}
	if proxy == "" {
		return nil, "", nil
	}
	noProxy := get(VarNoProxy)
	if noProxy == "" {
		noProxy = get(varNoProxyLC)
	}
	// Only the decision is asked of httpproxy: whether this target is proxied at all. The
	// URL is checked here, so that an error names the variable and never the password.
	probe := httpproxy.Config{HTTPSProxy: "http://probe.invalid:1", NoProxy: noProxy}
	target := &url.URL{Scheme: "https", Host: net.JoinHostPort(host, strconv.Itoa(port))}
	if p, _ := probe.ProxyFunc()(target); p == nil {
		return nil, "", nil
	}
	u, err := parseUpstreamURL(key, proxy)
	if err != nil {
		return nil, "", err
	}
	return u, key, nil
}

// MaskValue returns value as `env list` shows it without --show-secrets, and whether
// anything was hidden: a token entirely, an upstream proxy URL's password alone.
func MaskValue(key, value string) (string, bool) {
	switch key {
	case VarToken, VarAPIKey:
		return maskedPassword, true
	case VarVia:
		return maskURLPassword(value)
	}
	return value, false
}

// maskURLPassword hides the password of a [scheme://]user:password@host URL. A value that
// does not parse but has an @ is hidden whole: it may hold a password we cannot find.
func maskURLPassword(v string) (string, bool) {
	s := v
	if !strings.Contains(s, "://") {
		s = "http://" + s
	}
	u, err := url.Parse(s)
	if err != nil {
		if strings.Contains(v, "@") {
			return maskedPassword, true
		}
		return v, false
	}
	if _, has := u.User.Password(); !has {
		return v, false
	}
	u.User = url.UserPassword(u.User.Username(), "__MASK__")
	out := strings.Replace(u.String(), "__MASK__", maskedPassword, 1)
	if !strings.Contains(v, "://") {
		out = strings.TrimPrefix(out, "http://")
	}
	return out, true
}

// ShowURL is an upstream proxy URL as logs, errors and `route` show it: the password
// masked.
func ShowURL(u *url.URL) string {
	if u == nil {
		return ""
	}
	s, _ := maskURLPassword(u.String())
	return s
}
