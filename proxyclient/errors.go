package proxyclient

import (
	"errors"

	"github.com/tessel/tessel-proxy/wire"
)

// Refusals from the proxy, re-exported from wire so that callers of this package can test
// for them with errors.Is without importing wire. A refused stream comes back as a
// *wire.Error that unwraps to one of these.
var (
	ErrAuthFailed  = wire.ErrAuthFailed
	ErrBadRequest  = wire.ErrBadRequest
	ErrBadVersion  = wire.ErrBadVersion
	ErrDNSFailure  = wire.ErrDNSFailure
	ErrRefused     = wire.ErrRefused
	ErrUnreachable = wire.ErrUnreachable
	ErrTimeout     = wire.ErrTimeout
	ErrDenied      = wire.ErrDenied
	ErrTLSFailure  = wire.ErrTLSFailure
	ErrLimit       = wire.ErrLimit
	ErrInternal    = wire.ErrInternal
	ErrProtocol    = wire.ErrProtocol
)

// Errors of the client itself.
var (
	// ErrProxyUntrusted means the proxy's TLS certificate did not verify against PROXY_CERT
	// (or the system roots when PROXY_CERT is empty).
	ErrProxyUntrusted = errors.New("proxy certificate not trusted (set PROXY_CERT to the proxy's CA or self-signed certificate)")
	// ErrProxyUnreachable means the TCP connection or TLS handshake to the proxy failed.
	ErrProxyUnreachable = errors.New("cannot reach the proxy")
	// ErrTunnelLost means the tunnel a connection rode on closed under it (proxy gone,
	// keepalive timed out, network changed). The next dial opens a new tunnel.
	ErrTunnelLost = errors.New("tunnel to the proxy was lost")
	// ErrClosed means the Dialer was closed.
	ErrClosed = errors.New("proxy dialer closed")
)
