package proxyclient

import (
	"bufio"
	"context"
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/tessel/tessel-proxy/internal/relay"
	"github.com/tessel/tessel-proxy/wire"
)

// handshakeIdle bounds how long a client of the front may take over a SOCKS negotiation or
// an HTTP request head, and how long an idle HTTP keep-alive connection is kept.
const handshakeIdle = 2 * time.Minute

// Front is a local proxy on loopback that speaks SOCKS5 (RFC 1928, CONNECT only, with
// RFC 1929 username/password) and HTTP (CONNECT and absolute-URI forwarding) on one port,
// telling them apart by the first byte. Each connection is routed by its Dialer, so
// PROXY_LOCAL hosts go direct and the rest share the tunnel. Clients must present the
// front's credentials, which are random per Front: other local users cannot ride the
// tunnel.
type Front struct {
	d    *Dialer
	log  *slog.Logger
	ln   net.Listener
	user string
	pass string

	ctx    context.Context // cancelled by Close: ends pending dials
	cancel context.CancelFunc
	w      *workers

	mu     sync.Mutex
	conns  map[net.Conn]struct{}
	closed bool
	accept chan struct{} // closed when the accept loop has ended
}

// ListenFront starts a Front on addr (use "127.0.0.1:0") that dials through d. log
// receives one debug line per refused or failed connection; nil uses d's logger.
func ListenFront(d *Dialer, addr string, log *slog.Logger) (*Front, error) {
	if log == nil {
		log = d.log
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("local proxy: %w", err)
	}
	f := &Front{
		d: d, log: log, ln: ln,
		user:   "tp-" + randomHex(4),
		pass:   randomHex(16),
		w:      newWorkers(30 * time.Second),
		conns:  map[net.Conn]struct{}{},
		accept: make(chan struct{}),
	}
	f.ctx, f.cancel = context.WithCancel(context.Background())
	go f.serve()
	return f, nil
}

func randomHex(n int) string {
	b := make([]byte, n)
	rand.Read(b) // never fails (crypto/rand since Go 1.24)
	return hex.EncodeToString(b)
}

// Addr is the address the front listens on.
func (f *Front) Addr() *net.TCPAddr { return f.ln.Addr().(*net.TCPAddr) }

// Username is the user name clients must present, with Password. It is random per Front.
func (f *Front) Username() string { return f.user }

// Password is the password clients must present, with Username. It is random per Front.
func (f *Front) Password() string { return f.pass }

// URL is the front as a proxy URL with its credentials, for scheme "http" or "socks5h"
// (socks5h: the client leaves name resolution to the proxy, so names reach PROXY_LOCAL
// matching and the tunnel unresolved).
func (f *Front) URL(scheme string) string {
	u := url.URL{Scheme: scheme, User: url.UserPassword(f.user, f.pass), Host: f.Addr().String()}
	return u.String()
}

// Close stops accepting, closes every connection the front relays and waits for its
// goroutines to end. It does not close the Dialer.
func (f *Front) Close() error {
	f.mu.Lock()
	f.closed = true
	for c := range f.conns {
		c.Close()
	}
	f.mu.Unlock()
	f.cancel()
	err := f.ln.Close()
	<-f.accept
	f.w.Stop()
	return err
}

func (f *Front) serve() {
	defer close(f.accept)
	for {
		c, err := f.ln.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			// Out of file descriptors and the like: back off rather than spin.
			f.log.Debug("front accept", "err", err)
			time.Sleep(50 * time.Millisecond)
			continue
		}
		if !f.track(c) {
			c.Close()
			return
		}
		f.w.Go(func() { f.handle(c) })
	}
}

func (f *Front) track(c net.Conn) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.closed {
		return false
	}
	f.conns[c] = struct{}{}
	return true
}

// errLoop refuses a connection from the front to itself.
var errLoop = errors.New("that address is this local proxy itself")

// isSelf reports whether a direct connection to addr would reach the front's own
// listener. Relayed there, a request would come back as a second one, stripped of its
// credentials: the program would see a baffling 407 instead of its mistake.
func (f *Front) isSelf(addr string) bool {
	host, port, err := net.SplitHostPort(addr)
	if err != nil || port != strconv.Itoa(f.Addr().Port) || !f.d.Route(host).Direct {
		return false
	}
	if ip, err := netip.ParseAddr(strings.Trim(host, "[]")); err == nil {
		ip = ip.Unmap()
		return (ip.Is4() && ip.IsUnspecified()) || net.IP(ip.AsSlice()).Equal(f.Addr().IP)
	}
	return strings.EqualFold(strings.TrimSuffix(host, "."), "localhost")
}

// dial connects to addr through the Dialer and tracks the connection, so that Close can
// end a handler blocked on the target.
func (f *Front) dial(addr string, early []byte) (net.Conn, error) {
	if f.isSelf(addr) {
		return nil, fmt.Errorf("dial %s: %w", addr, errLoop)
	}
	c, err := f.d.DialEarly(f.ctx, "tcp", addr, early)
	if err != nil {
		return nil, err
	}
	if !f.track(c) {
		c.Close()
		return nil, ErrClosed
	}
	return &trackedConn{Conn: c, f: f}, nil
}

// trackedConn forgets itself on Close. It keeps CloseWrite reachable for relays.
type trackedConn struct {
	net.Conn
	f *Front
}

func (t *trackedConn) Close() error { return t.f.untrack(t.Conn) }

func (t *trackedConn) CloseWrite() error {
	if cw, ok := t.Conn.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return nil
}

// untrack forgets c and closes it.
func (f *Front) untrack(c net.Conn) error {
	f.mu.Lock()
	delete(f.conns, c)
	f.mu.Unlock()
	return c.Close()
}

func (f *Front) handle(c net.Conn) {
	defer f.untrack(c)
	c.SetReadDeadline(time.Now().Add(handshakeIdle))
	lim := &headLimit{r: c, n: maxHeadBytes}
	br := bufio.NewReaderSize(lim, 16<<10)
	first, err := br.Peek(1)
	if err != nil {
		return
	}
	if first[0] == socksVersion {
		f.serveSOCKS(c, br)
		return
	}
	f.serveHTTP(c, br, lim)
}

// maxHeadBytes bounds what a client may send before it is authenticated and its request
// head is complete, so that nobody can make the front buffer without end.
const maxHeadBytes = 1 << 20

// headLimit is the client's reader with a budget that the front resets per request head
// and lifts for bodies and relayed bytes.
type headLimit struct {
	r io.Reader
	n int64 // bytes left; < 0: unlimited
}

var errHeadTooLarge = errors.New("request head too large")

func (l *headLimit) Read(p []byte) (int, error) {
	if l.n < 0 {
		return l.r.Read(p)
	}
	if l.n == 0 {
		return 0, errHeadTooLarge
	}
	if int64(len(p)) > l.n {
		p = p[:l.n]
	}
	n, err := l.r.Read(p)
	l.n -= int64(n)
	return n, err
}

// checkCredentials compares in constant time, so that response timing does not reveal
// how much of a guess was right.
func (f *Front) checkCredentials(user, pass []byte) bool {
	u := subtle.ConstantTimeCompare(user, []byte(f.user))
	p := subtle.ConstantTimeCompare(pass, []byte(f.pass))
	return u&p == 1
}

// relay copies both ways between the client (whose reader br may hold bytes already
// read) and target until both directions have ended, carrying half-closes across. When
// the target's side fails before its end (the tunnel was lost, the target reset), the
// client is reset, so that it cannot take what it got for the whole answer.
func (f *Front) relay(client net.Conn, br *bufio.Reader, target net.Conn) {
	defer target.Close()
	client.SetDeadline(time.Time{})
	if n := br.Buffered(); n > 0 {
		b, _ := br.Peek(n)
		if _, err := target.Write(b); err != nil {
			return
		}
		br.Discard(n)
	}
	// The relay gets the bare connection, so that two TCP connections splice; the
	// deferred Close above forgets the tracked one.
	if t, ok := target.(*trackedConn); ok {
		target = t.Conn
	}
	relay.Pipe(
		relay.Side{Conn: client, Abort: func() { relay.Reset(client) }},
		relay.Side{Conn: target},
		relay.Options{Go: f.w.Go})
}

// ---- SOCKS5 ----

const (
	socksVersion     = 5
	socksAuthUserPwd = 2
	socksNoMethod    = 0xff
	socksConnect     = 1
	socksATYPv4      = 1
	socksATYPDomain  = 3
	socksATYPv6      = 4
)

// SOCKS5 reply codes (RFC 1928 section 6).
const (
	socksOK             = 0
	socksGeneralFailure = 1
	socksNotAllowed     = 2
	socksNetUnreachable = 3
	socksHostUnreach    = 4
	socksRefused        = 5
	socksTTLExpired     = 6
	socksCmdUnsupported = 7
	socksATYPUnsupport  = 8
)

func (f *Front) serveSOCKS(c net.Conn, br *bufio.Reader) {
	var head [2]byte
	if _, err := io.ReadFull(br, head[:]); err != nil {
		return
	}
	methods := make([]byte, head[1])
	if _, err := io.ReadFull(br, methods); err != nil {
		return
	}
	hasUserPwd := false
	for _, m := range methods {
		hasUserPwd = hasUserPwd || m == socksAuthUserPwd
	}
	if !hasUserPwd {
		f.log.Debug("front: SOCKS client offered no username/password auth")
		c.Write([]byte{socksVersion, socksNoMethod})
		return
	}
	if _, err := c.Write([]byte{socksVersion, socksAuthUserPwd}); err != nil {
		return
	}
	// RFC 1929: VER ULEN UNAME PLEN PASSWD
	user, err := readLenPrefixed(br, 1)
	if err != nil {
		return
	}
	pass, err := readLenPrefixed(br, -1)
	if err != nil {
		return
	}
	if !f.checkCredentials(user, pass) {
		f.log.Debug("front: SOCKS client gave wrong credentials")
		c.Write([]byte{1, 1})
		return
	}
	if _, err := c.Write([]byte{1, 0}); err != nil {
		return
	}

	var req [4]byte // VER CMD RSV ATYP
	if _, err := io.ReadFull(br, req[:]); err != nil || req[0] != socksVersion {
		return
	}
	var host string
	switch req[3] {
	case socksATYPv4, socksATYPv6:
		ip := make(net.IP, 4)
		if req[3] == socksATYPv6 {
			ip = make(net.IP, 16)
		}
		if _, err := io.ReadFull(br, ip); err != nil {
			return
		}
		host = ip.String()
	case socksATYPDomain:
		name, err := readLenPrefixed(br, -1)
		if err != nil || len(name) == 0 {
			return
		}
		host = string(name)
	default:
		socksReply(c, socksATYPUnsupport)
		return
	}
	var pb [2]byte
	if _, err := io.ReadFull(br, pb[:]); err != nil {
		return
	}
	if req[1] != socksConnect {
		socksReply(c, socksCmdUnsupported)
		return
	}
	addr := net.JoinHostPort(host, strconv.Itoa(int(binary.BigEndian.Uint16(pb[:]))))
	target, err := f.dial(addr, nil)
	if err != nil {
		f.log.Debug("front: SOCKS dial failed", "addr", addr, "err", err)
		socksReply(c, socksCode(err, f.dialStatus(err)))
		return
	}
	if err := socksReply(c, socksOK); err != nil {
		target.Close()
		return
	}
	f.relay(c, br, target)
}

// readLenPrefixed reads a one-byte length and that many bytes. want >= 0 first reads a
// version byte that must equal want (RFC 1929's VER).
func readLenPrefixed(br *bufio.Reader, want int) ([]byte, error) {
	if want >= 0 {
		v, err := br.ReadByte()
		if err != nil {
			return nil, err
		}
		if int(v) != want {
			return nil, fmt.Errorf("SOCKS auth version %d", v)
		}
	}
	n, err := br.ReadByte()
	if err != nil {
		return nil, err
	}
	b := make([]byte, n)
	_, err = io.ReadFull(br, b)
	return b, err
}

func socksReply(c net.Conn, code byte) error {
	// The bound address is meaningless through a tunnel; RFC 1928 allows zeros.
	_, err := c.Write([]byte{socksVersion, code, 0, socksATYPv4, 0, 0, 0, 0, 0, 0})
	return err
}

// dialStatus is what a failed dial means to the front's clients, as a wire status: the
// proxy's refusal, or what a direct dial's error means (wire.StatusOf, the mapping the
// server replies with). A dial to the front itself is StatusDenied. Errors of the client's
// own (the tunnel lost, the proxy unreachable, the front closed) are StatusInternal, which
// both fronts report as a general failure.
func (f *Front) dialStatus(err error) wire.Status {
	if errors.Is(err, errLoop) {
		return wire.StatusDenied
	}
	status, known := wire.StatusOf(f.ctx, err)
	if !known {
		return wire.StatusInternal
	}
	return status
}

// socksCode is the SOCKS reply code for a dial that failed with err and status (see
// dialStatus).
func socksCode(err error, status wire.Status) byte {
	switch status {
	case wire.StatusDenied:
		return socksNotAllowed
	case wire.StatusRefused:
		return socksRefused
	case wire.StatusUnreachable:
		// SOCKS tells an unreachable network from an unreachable host; the wire has one
		// status for both, and only a direct dial's error still says which.
		if errors.Is(err, syscall.ENETUNREACH) {
			return socksNetUnreachable
		}
		return socksHostUnreach
	case wire.StatusDNSFailure:
		return socksHostUnreach
	case wire.StatusTimeout:
		return socksTTLExpired
	}
	return socksGeneralFailure
}

// basicAuthOK reports whether a Proxy-Authorization header carries the front's credentials
// as Basic auth (base64 of "user:pass"); the scheme name is case-insensitive (RFC 9110).
func (f *Front) basicAuthOK(header string) bool {
	const prefix = "basic "
	if len(header) < len(prefix) || !strings.EqualFold(header[:len(prefix)], prefix) {
		return false
	}
	raw, err := base64.StdEncoding.DecodeString(header[len(prefix):])
	if err != nil {
		return false
	}
	for i, b := range raw {
		if b == ':' {
			return f.checkCredentials(raw[:i], raw[i+1:])
		}
	}
	return false
}
