package commands

import (
	"context"
	"log/slog"
	"net"
	"strconv"

	"github.com/tessel/tessel-proxy/proxyclient"
	"github.com/tessel/tessel-proxy/transparent"
)

// transparentHelp is the part of run's description about --transparent.
const transparentHelp = `With --transparent (Linux), PROGRAM runs in network and mount namespaces of its own
(and a user namespace of its own when run is not root) whose only route leads to
tessel-proxy, so that every TCP connection it makes is routed as above, whether or not
it reads proxy variables: static binaries, Node's net and tls, raw sockets. No proxy
variables are set. Its DNS is answered by tessel-proxy: names that PROXY_LOCAL routes
direct are resolved on this machine, every other name gets a stand-in address that
tessel-proxy maps back to the name, so that the proxy server resolves it and no query
for it leaves this machine. UDP other than DNS and ICMP (ping) are refused. 127.0.0.1
inside is the program's own; 240.0.0.1 is this machine's loopback, where PROXY_LOCAL
routes 127.0.0.1 direct. Without root it needs unprivileged user namespaces and a
/dev/net/tun that everyone may open (mode 0666); when transparent mode cannot work, run
says why and exits 125.`

// newTransparentRunner returns the Runner of a transparent run whose connections go
// through dialer.
func newTransparentRunner(dialer *proxyclient.Dialer, log *slog.Logger) (*transparent.Runner, error) {
	return transparent.New(transparent.Config{
		Dial: func(ctx context.Context, host string, port uint16) (net.Conn, error) {
			return dialer.DialContext(ctx, "tcp", net.JoinHostPort(host, strconv.Itoa(int(port))))
		},
		DialEarly: func(ctx context.Context, host string, port uint16, early []byte) (net.Conn, error) {
			return dialer.DialEarly(ctx, "tcp", net.JoinHostPort(host, strconv.Itoa(int(port))), early)
		},
		Local: func(host string) bool { return dialer.Route(host).Direct },
		Log:   log,
	})
}
