// Package wsconn turns a WebSocket connection into the net.Conn a tunnel runs on, for both
// ends: every Write is one binary message, reads see the messages' bytes as one stream.
package wsconn

import (
	"context"
	"net"

	"github.com/coder/websocket"
)

// Conn is a tunnel's byte stream over a WebSocket.
type Conn struct {
	net.Conn
	ws            *websocket.Conn
	cancel        context.CancelFunc
	local, remote net.Addr
}

// New wraps ws. local and remote are the addresses of the connection underneath (the
// library knows them only on the accepting side), for logs; nil keeps the library's.
func New(ws *websocket.Conn, local, remote net.Addr) *Conn {
	ctx, cancel := context.WithCancel(context.Background())
	nc := websocket.NetConn(ctx, ws, websocket.MessageBinary)
	if local == nil {
		local = nc.LocalAddr()
	}
	if remote == nil {
		remote = nc.RemoteAddr()
	}
	return &Conn{Conn: nc, ws: ws, cancel: cancel, local: local, remote: remote}
}

// Close closes the connection at once. The tunnel says goodbye in its own protocol (yamux
// GoAway and FIN); a WebSocket close handshake on top would wait up to 10 s for a peer that
// may be gone, which is what keepalive has just found out.
func (c *Conn) Close() error {
	c.cancel()
	return c.ws.CloseNow()
}

// LocalAddr is the local address of the connection underneath.
func (c *Conn) LocalAddr() net.Addr { return c.local }

// RemoteAddr is the peer address of the connection underneath.
func (c *Conn) RemoteAddr() net.Addr { return c.remote }
