package proxyclient

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/coder/websocket"
	"github.com/tessel/tessel-proxy/internal/wsconn"
	"github.com/tessel/tessel-proxy/proxyconfig"
)

// Errors of the upstream HTTP proxy (PROXY_VIA, or HTTPS_PROXY) that the tunnel's own
// connection goes through. The message around them names the upstream proxy, its password
// masked, and the variable it came from.
var (
	// ErrUpstreamUnreachable means the TCP connection to the upstream proxy failed.
	ErrUpstreamUnreachable = errors.New("cannot reach the upstream proxy")
	// ErrUpstreamAuth means the upstream proxy answered 407: it wants credentials, or
	// refused the ones given.
	ErrUpstreamAuth = errors.New("upstream proxy authentication failed")
	// ErrUpstreamRefused means the upstream proxy answered CONNECT with another error
	// status (the proxy server's port not allowed, the proxy server unreachable from it...).
	ErrUpstreamRefused = errors.New("upstream proxy refused to connect to the proxy server")
)

// transport makes the connection a tunnel runs on: TCP to the proxy server, directly or
// through an upstream HTTP proxy's CONNECT; TLS inside it, end to end with the proxy
// server; and for a wss:// PROXY_HOST a WebSocket inside the TLS. The wire handshake and
// yamux then run on what it returns, the same either way.
type transport struct {
	cfg     proxyconfig.Config
	direct  *net.Dialer
	timeout time.Duration // the handshake's bound, for messages
}

// addr is the proxy server's host:port.
func (tr *transport) addr() string {
	return net.JoinHostPort(tr.cfg.Host, strconv.Itoa(tr.cfg.Port))
}

// String says how the tunnel's connection is made, for logs and `route`; an upstream
// proxy's password is masked.
func (tr *transport) String() string {
	s := tr.addr()
	if tr.cfg.WebSocketPath != "" {
		s = tr.webSocketURL("wss")
	}
	if tr.cfg.Via != nil {
		s += " via upstream proxy " + tr.upstream()
	}
	return s
}

// upstream names the upstream proxy in messages: its URL, password masked, and where it
// was configured.
func (tr *transport) upstream() string {
	return proxyconfig.ShowURL(tr.cfg.Via) + " (" + tr.cfg.ViaSource + ")"
}

func (tr *transport) webSocketURL(scheme string) string {
	host := tr.addr()
	if tr.cfg.Port == 443 {
		host = tr.cfg.Host
		if strings.Contains(host, ":") {
			host = "[" + host + "]"
		}
	}
	return (&url.URL{Scheme: scheme, Host: host, Path: tr.cfg.WebSocketPath}).String()
}

// dial returns the byte stream to the proxy server on which the wire handshake starts, and
// the TCP connection under it (closing it unblocks a write stuck on a dead path, which
// closing the stream itself would wait behind).
func (tr *transport) dial(ctx context.Context) (net.Conn, net.Conn, error) {
	raw, err := tr.dialTCP(ctx)
	if err != nil {
		return nil, nil, err
	}
	tc := tls.Client(raw, &tls.Config{ServerName: tr.cfg.Host, RootCAs: tr.cfg.RootCAs, MinVersion: tls.VersionTLS12})
	if err := tc.HandshakeContext(ctx); err != nil {
		raw.Close()
		var verr *tls.CertificateVerificationError
		var uerr x509.UnknownAuthorityError
		var herr x509.HostnameError
		if errors.As(err, &verr) || errors.As(err, &uerr) || errors.As(err, &herr) {
			return nil, nil, fmt.Errorf("%s: %w: %v", tr.addr(), ErrProxyUntrusted, err)
		}
		return nil, nil, tr.unreachable(ctx, fmt.Errorf("TLS handshake: %w", err))
	}
	if tr.cfg.WebSocketPath == "" {
		return tc, raw, nil
	}
	c, err := tr.upgrade(ctx, tc)
	if err != nil {
		tc.Close()
		return nil, nil, err
	}
	return c, raw, nil
}

// dialTCP connects to the proxy server, through the upstream proxy when there is one.
func (tr *transport) dialTCP(ctx context.Context) (net.Conn, error) {
	if tr.cfg.Via == nil {
		c, err := tr.direct.DialContext(ctx, "tcp", tr.addr())
		if err != nil {
			return nil, tr.unreachable(ctx, err)
		}
		return c, nil
	}
	c, err := tr.direct.DialContext(ctx, "tcp", tr.cfg.Via.Host)
	if err != nil {
		var ne net.Error
		switch {
		case errors.Is(ctx.Err(), context.Canceled):
			return nil, context.Canceled
		case ctx.Err() != nil || errors.As(err, &ne) && ne.Timeout():
			return nil, fmt.Errorf("%w %s: no answer within %s", ErrUpstreamUnreachable, tr.upstream(), tr.timeout)
		}
		return nil, fmt.Errorf("%w %s: %v", ErrUpstreamUnreachable, tr.upstream(), err)
	}
	if err := tr.connect(ctx, c); err != nil {
		c.Close()
		return nil, err
	}
	return c, nil
}

// connect asks the upstream proxy on c for a tunnel to the proxy server (RFC 9110 CONNECT),
// with Basic credentials when PROXY_VIA has them.
func (tr *transport) connect(ctx context.Context, c net.Conn) error {
	if dl, ok := ctx.Deadline(); ok {
		c.SetDeadline(dl)
	}
	stop := context.AfterFunc(ctx, func() { c.SetDeadline(time.Now()) })
	defer stop()

	target := tr.addr()
	var b strings.Builder
	fmt.Fprintf(&b, "CONNECT %s HTTP/1.1\r\nHost: %s\r\n", target, target)
	if u := tr.cfg.Via.User; u != nil {
		pass, _ := u.Password()
		b.WriteString("Proxy-Authorization: Basic " + base64.StdEncoding.EncodeToString([]byte(u.Username()+":"+pass)) + "\r\n")
	}
	b.WriteString("\r\n")
	if _, err := io.WriteString(c, b.String()); err != nil {
		return tr.upstreamBroke(ctx, err)
	}
	resp, err := http.ReadResponse(bufio.NewReaderSize(&exactReader{c}, 1), &http.Request{Method: http.MethodConnect})
	if err != nil {
		return tr.upstreamBroke(ctx, err)
	}
	resp.Body.Close()
	auth := resp.StatusCode == http.StatusProxyAuthRequired || resp.StatusCode == http.StatusUnauthorized
	switch {
	case resp.StatusCode/100 == 2:
		c.SetDeadline(time.Time{})
		return nil
	case auth && !offersBasic(resp.Header.Values("Proxy-Authenticate")):
		return fmt.Errorf("%w: %s answered %s and asks for %s authentication; only Basic is spoken here "+
			"(a local proxy such as cntlm or px can speak NTLM or Negotiate to it, and Basic or none to us)",
			ErrUpstreamAuth, tr.upstream(), resp.Status, schemes(resp.Header.Values("Proxy-Authenticate")))
	// 407 is the standard answer; some proxies (tinyproxy, to wrong credentials) say 401.
	case auth && tr.cfg.Via.User == nil:
		return fmt.Errorf("%w: %s answered %s; it wants a user and password: %s=http://USER:PASSWORD@%s",
			ErrUpstreamAuth, tr.upstream(), resp.Status, tr.cfg.ViaSource, tr.cfg.Via.Host)
	case auth:
		return fmt.Errorf("%w: %s answered %s; check the user and password in %s",
			ErrUpstreamAuth, tr.upstream(), resp.Status, tr.cfg.ViaSource)
	default:
		return fmt.Errorf("%w %s: %s answered %s to CONNECT", ErrUpstreamRefused, target, tr.upstream(), resp.Status)
	}
}

// offersBasic reports whether an upstream proxy's Proxy-Authenticate challenges allow Basic
// credentials; no challenge at all is taken as yes.
func offersBasic(challenges []string) bool {
	if len(challenges) == 0 {
		return true
	}
	for _, c := range challenges {
		for _, part := range strings.Split(c, ",") {
			scheme, _, _ := strings.Cut(strings.TrimSpace(part), " ")
			if strings.EqualFold(scheme, "Basic") {
				return true
			}
		}
	}
	return false
}

// schemes names the authentication schemes of challenges, for a message.
func schemes(challenges []string) string {
	var names []string
	for _, c := range challenges {
		scheme, _, _ := strings.Cut(strings.TrimSpace(c), " ")
		names = append(names, scheme)
	}
	return strings.Join(names, " or ")
}

// exactReader hands out one byte per Read, so that the bufio.Reader parsing the CONNECT
// answer never takes bytes past its end from the connection.
type exactReader struct{ r io.Reader }

func (e *exactReader) Read(p []byte) (int, error) {
	if len(p) > 1 {
		p = p[:1]
	}
	return e.r.Read(p)
}

func (tr *transport) upstreamBroke(ctx context.Context, err error) error {
	var ne net.Error
	if ctx.Err() != nil || errors.As(err, &ne) && ne.Timeout() {
		return tr.unreachable(ctx, err)
	}
	return fmt.Errorf("%w %s: no HTTP answer to CONNECT (is it an HTTP proxy?): %v", ErrUpstreamUnreachable, tr.upstream(), err)
}

// upgrade opens the WebSocket on the TLS connection tc.
func (tr *transport) upgrade(ctx context.Context, tc *tls.Conn) (net.Conn, error) {
	used := false
	hc := &http.Client{Transport: &http.Transport{
		// The connection is ours already, TLS done; the transport only speaks HTTP/1.1 on it.
		DialTLSContext: func(context.Context, string, string) (net.Conn, error) {
			if used {
				return nil, errors.New("one connection only")
			}
			used = true
			return tc, nil
		},
		TLSNextProto: map[string]func(string, *tls.Conn) http.RoundTripper{},
	}}
	ws, resp, err := websocket.Dial(ctx, tr.webSocketURL("https"), &websocket.DialOptions{
		HTTPClient:      hc,
		CompressionMode: websocket.CompressionDisabled, // the payload is TLS inside: nothing to gain
	})
	if err != nil {
		where := tr.webSocketURL("wss")
		if resp != nil && resp.StatusCode != http.StatusSwitchingProtocols {
			return nil, fmt.Errorf("%s answered %s, not a WebSocket upgrade (check the path in PROXY_HOST, serve --ws-path, or the front end's configuration): %w",
				where, resp.Status, ErrProtocol)
		}
		if ctx.Err() != nil {
			return nil, tr.unreachable(ctx, err)
		}
		return nil, fmt.Errorf("%s: WebSocket upgrade failed: %w: %v", where, ErrProtocol, err)
	}
	return wsconn.New(ws, tc.LocalAddr(), tc.RemoteAddr()), nil
}

// unreachable is the error for a connection to the proxy server that failed or took too
// long.
func (tr *transport) unreachable(ctx context.Context, err error) error {
	via := ""
	if tr.cfg.Via != nil {
		via = " via " + tr.upstream()
	}
	// A connection's deadline is the context's: its timeout may be noticed first.
	var ne net.Error
	if errors.Is(ctx.Err(), context.DeadlineExceeded) || errors.As(err, &ne) && ne.Timeout() {
		return fmt.Errorf("%w %s%s: no answer within %s", ErrProxyUnreachable, tr.addr(), via, tr.timeout)
	}
	if errors.Is(ctx.Err(), context.Canceled) {
		return context.Canceled
	}
	return fmt.Errorf("%w %s%s: %v", ErrProxyUnreachable, tr.addr(), via, err)
}
