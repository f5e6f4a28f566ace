package commands

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/netip"
	"net/url"
	"strings"

	"github.com/tessel/tessel-proxy/deviceenv"
	"github.com/tessel/tessel-proxy/internal/hostport"
	"github.com/tessel/tessel-proxy/proxyclient"
	"github.com/tessel/tessel-proxy/proxyconfig"
	"github.com/urfave/cli/v2"
)

// RouteOptions is what `route` needs.
type RouteOptions struct {
	IO     IO
	Target string // HOST[:PORT]
	TLS    bool   // ask about the library's TLS dialer instead of a plain connection
	JSON   bool
}

func routeCommand(io IO) *cli.Command {
	return &cli.Command{
		Name:      "route",
		Usage:     "say whether a connection to HOST would go direct or through the proxy, and why",
		ArgsUsage: "HOST[:PORT]",
		Description: `Applies the routing rules that run uses, with this machine's configuration
(environment, then the device env file), without connecting anywhere. The first word
of the answer is "direct" or "proxy"; the rest says which rule decided. The host is
matched as given: no DNS lookup. An IPv6 address may be bare or in brackets; with a
port it must be in brackets.

Exit status: 0 with an answer; 2 for a malformed HOST[:PORT] or PROXY_* setting (the
message names it).

Examples:
   tessel-proxy route example.com            # proxy (tunnel to proxy.tessel.io:443)
   tessel-proxy route 192.168.1.20:8080      # direct (PROXY_LOCAL entry 192.168.0.0/16 matches)
   tessel-proxy route '[fd00::5]:22'         # IPv6 with a port
   tessel-proxy route --json db.internal     # {"host", "port", "tls", "route", "reason", "proxy", "via"}
   PROXY_VIA=http://proxy.corp:3128 tessel-proxy route example.com
                                             # proxy (tunnel to proxy.tessel.io:443 via upstream proxy ...)`,
		Flags: []cli.Flag{
			&cli.BoolFlag{Name: "tls", Usage: "ask about a TLS connection made by the library's TLS dialer (PROXY_TRUSTED applies)"},
			&cli.BoolFlag{Name: "json", Usage: "print a JSON object with host, port, tls, route (direct or proxy), reason and proxy"},
		},
		Action: func(c *cli.Context) error {
			if c.NArg() != 1 {
				return usageError("route: give one HOST[:PORT], e.g. tessel-proxy route example.com:443")
			}
			return runRoute(c.Context, &RouteOptions{IO: io, Target: c.Args().First(), TLS: c.Bool("tls"), JSON: c.Bool("json")})
		},
	}
}

// routeAnswer is the JSON form of a routing decision.
type routeAnswer struct {
	Host   string `json:"host"`
	Port   int    `json:"port,omitempty"`
	TLS    bool   `json:"tls"`
	Route  string `json:"route"` // "direct" or "proxy"
	Reason string `json:"reason"`
	Proxy  string `json:"proxy,omitempty"` // host:port of the proxy, when the route is proxy
	Via    string `json:"via,omitempty"`   // the upstream HTTP proxy the tunnel goes through, password masked
}

func runRoute(ctx context.Context, o *RouteOptions) error {
	host, port, err := splitRouteTarget(o.Target)
	if err != nil {
		return usageError("route: %v", err)
	}
	cfg, err := deviceenv.LoadLocal(o.IO.LookupEnv)
	if err != nil {
		return usageError("route: %v", err)
	}
	token, _, err := resolveToken(ctx, o.IO, cfg)
	if err != nil {
		return exitCode(ExitFailure, fmt.Errorf("route: %w", err))
	}
	d := proxyclient.NewDialer(withToken(cfg, token), nil)
	defer d.Close()
	dec := d.Route(host)
	if o.TLS {
		dec = d.RouteTLS(host)
	}
	ans := routeAnswer{Host: host, Port: port, TLS: o.TLS, Route: "direct", Reason: dec.Reason}
	if !dec.Direct {
		ans.Route, ans.Proxy, ans.Via = "proxy", d.ProxyAddr(), proxyconfig.ShowURL(cfg.Via)
		if dec.Reason == proxyclient.ReasonTunnel {
			ans.Reason = "tunnel to " + d.Transport()
		}
	}
	if o.JSON {
		enc := json.NewEncoder(o.IO.Out)
		enc.SetIndent("", "  ")
		return enc.Encode(ans)
	}
	_, err = fmt.Fprintf(o.IO.Out, "%s (%s)\n", ans.Route, ans.Reason)
	return err
}

// splitRouteTarget accepts host, host:port, an IPv6 address bare or in brackets, and
// [v6]:port. Brackets hold an IPv6 address and nothing else.
func splitRouteTarget(s string) (string, int, error) {
	if s == "" {
		return "", 0, fmt.Errorf("empty host")
	}
	if u, err := url.Parse(s); err == nil && u.Scheme != "" && u.Host != "" {
		return "", 0, fmt.Errorf("%q is a URL: give its host and port, e.g. %s", s, u.Host)
	}
	if strings.ContainsAny(s, " \t\r\n/?#@") {
		return "", 0, fmt.Errorf("%q is not HOST or HOST:PORT", s)
	}
	if ip, err := netip.ParseAddr(s); err == nil && ip.Is6() {
		return s, 0, nil
	}
	host, port := s, 0
	if h, ok := hostport.Unbracket(s); ok {
		host = h
	} else if strings.Contains(s, ":") {
		h, ps, err := net.SplitHostPort(s)
		if err != nil {
			return "", 0, fmt.Errorf("%q is not HOST or HOST:PORT (an IPv6 address with a port goes in brackets: [::1]:443)", s)
		}
		p, ok := hostport.ParsePort(ps)
		if !ok {
			return "", 0, fmt.Errorf("port %q in %q is not a number 1..65535", ps, s)
		}
		port = int(p)
		host = h
	}
	if host == "" {
		return "", 0, fmt.Errorf("%q has no host", s)
	}
	if ip, err := netip.ParseAddr(host); strings.HasPrefix(s, "[") && (err != nil || !ip.Is6()) {
		return "", 0, fmt.Errorf("%q: brackets hold an IPv6 address, and %q is not one", s, host)
	}
	if strings.ContainsAny(host, "[]") {
		return "", 0, fmt.Errorf("%q is not HOST or HOST:PORT", s)
	}
	return host, port, nil
}
