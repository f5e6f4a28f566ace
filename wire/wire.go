// Package wire is the tunnel's wire format, shared by the client (proxyclient) and the server
// (proxyserver): the handshake that authenticates a tunnel, the request that opens each stream,
// and the status that answers both. spec.md beside this file is the reference; this file is
// its implementation. Every reader here is length-bounded and never allocates more than the
// declared limits, so a hostile peer cannot make it buffer without end.
package wire

import (
	"errors"
	"fmt"
	"io"
	"time"
	"unicode/utf8"

	"github.com/hashicorp/yamux"
)

// Version is the wire version this package speaks.
const Version = 1

// Magic opens every tunnel, so that a server can tell a tessel-proxy client from a stray
// HTTPS client at once.
var Magic = [4]byte{'T', 'P', 'X', 'Y'}

// Limits of the format. They bound what a reader will accept.
const (
	MaxTokenLen   = 8192 // bytes of token in a Hello
	MaxHostLen    = 255  // bytes of host name in a StreamRequest (DNS's own limit)
	MaxMessageLen = 255  // bytes of human-readable message in a Reply
)

// Kind says what the server does with a stream.
type Kind byte

const (
	// KindNet relays bytes between the stream and a TCP connection to the target.
	KindNet Kind = 1
	// KindTLS makes the server open a TLS connection to the target on the client's behalf,
	// verifying the target's certificate against the server's roots, and relay plaintext.
	// A client sends it only when the user trusts the proxy (PROXY_TRUSTED).
	KindTLS Kind = 2
)

// String names k as logs show it: "net", "tls", or "kind(N)" for an unknown kind.
func (k Kind) String() string {
	switch k {
	case KindNet:
		return "net"
	case KindTLS:
		return "tls"
	}
	return fmt.Sprintf("kind(%d)", byte(k))
}

// Status answers a Hello or a StreamRequest.
type Status byte

// Statuses of a Reply. Every status but StatusOK is a refusal, and maps to one of the errors
// below (see Status.Err).
const (
	StatusOK          Status = 0
	StatusAuthFailed  Status = 1  // the token was refused (or has expired)
	StatusBadRequest  Status = 2  // the request broke the format or its limits
	StatusBadVersion  Status = 3  // the server does not speak the client's wire version
	StatusDNSFailure  Status = 4  // the target host name did not resolve
	StatusRefused     Status = 5  // the target refused the connection
	StatusUnreachable Status = 6  // no route to the target
	StatusTimeout     Status = 7  // the dial to the target timed out
	StatusDenied      Status = 8  // the server's destination policy refused the target
	StatusTLSFailure  Status = 9  // KindTLS: the handshake with the target failed
	StatusLimit       Status = 10 // a server limit was reached (streams per tunnel, ...)
	StatusInternal    Status = 11 // anything else went wrong on the server
)

// Errors that a Status other than StatusOK maps to. Test for them with errors.Is.
var (
	ErrAuthFailed  = errors.New("proxy refused the token")
	ErrBadRequest  = errors.New("proxy rejected the request as malformed")
	ErrBadVersion  = errors.New("proxy does not speak this wire version")
	ErrDNSFailure  = errors.New("proxy could not resolve the host")
	ErrRefused     = errors.New("connection refused by the target")
	ErrUnreachable = errors.New("target unreachable from the proxy")
	ErrTimeout     = errors.New("proxy timed out connecting to the target")
	ErrDenied      = errors.New("target denied by the proxy's policy")
	ErrTLSFailure  = errors.New("proxy's TLS handshake with the target failed")
	ErrLimit       = errors.New("proxy limit reached")
	ErrInternal    = errors.New("proxy internal error")
	// ErrProtocol means the peer broke this format (it is not a Status on the wire).
	ErrProtocol = errors.New("tunnel protocol error")
)

var statusErrors = map[Status]error{
	StatusAuthFailed:  ErrAuthFailed,
	StatusBadRequest:  ErrBadRequest,
	StatusBadVersion:  ErrBadVersion,
	StatusDNSFailure:  ErrDNSFailure,
	StatusRefused:     ErrRefused,
	StatusUnreachable: ErrUnreachable,
	StatusTimeout:     ErrTimeout,
	StatusDenied:      ErrDenied,
	StatusTLSFailure:  ErrTLSFailure,
	StatusLimit:       ErrLimit,
	StatusInternal:    ErrInternal,
}

// Err returns the sentinel error for s, nil for StatusOK, ErrProtocol for an unknown status.
func (s Status) Err() error {
	if s == StatusOK {
		return nil
	}
	if err, ok := statusErrors[s]; ok {
		return err
	}
	return ErrProtocol
}

// String is "ok" for StatusOK, else the text of the status's error.
func (s Status) String() string {
	if s == StatusOK {
		return "ok"
	}
	return s.Err().Error()
}

// Error is a refusal received from the peer: its Status and the peer's message.
// errors.Is(err, ErrDenied) and the like work on it.
type Error struct {
	Status  Status
	Message string
}

// Error is the status's text, then the peer's message when there is one.
func (e *Error) Error() string {
	if e.Message == "" {
		return e.Status.String()
	}
	return e.Status.String() + ": " + e.Message
}

// Unwrap returns the sentinel error of the status.
func (e *Error) Unwrap() error { return e.Status.Err() }

// Hello is the first thing a client sends on a new tunnel, right after the TLS handshake.
type Hello struct {
	Version byte
	Token   string
}

// WriteHello writes h in one Write call.
func WriteHello(w io.Writer, h Hello) error {
	if len(h.Token) == 0 || len(h.Token) > MaxTokenLen {
		return fmt.Errorf("%w: token length %d outside 1..%d", ErrProtocol, len(h.Token), MaxTokenLen)
	}
	buf := make([]byte, 0, 7+len(h.Token))
	buf = append(buf, Magic[:]...)
	buf = append(buf, h.Version, byte(len(h.Token)>>8), byte(len(h.Token)))
	buf = append(buf, h.Token...)
	_, err := w.Write(buf)
	return err
}

// ReadHello reads a Hello. A wrong magic or an out-of-range length is ErrProtocol; a version
// other than Version is returned as read, for the caller to refuse with StatusBadVersion.
func ReadHello(r io.Reader) (Hello, error) {
	var head [7]byte
	if _, err := io.ReadFull(r, head[:]); err != nil {
		return Hello{}, err
	}
	if [4]byte(head[:4]) != Magic {
		return Hello{}, fmt.Errorf("%w: not a tessel-proxy client (bad magic)", ErrProtocol)
	}
	n := int(head[5])<<8 | int(head[6])
	if n == 0 || n > MaxTokenLen {
		return Hello{}, fmt.Errorf("%w: token length %d outside 1..%d", ErrProtocol, n, MaxTokenLen)
	}
	token := make([]byte, n)
	if _, err := io.ReadFull(r, token); err != nil {
		return Hello{}, err
	}
	return Hello{Version: head[4], Token: string(token)}, nil
}

// StreamRequest opens a stream: what kind, and which target. Host is sent unresolved, so
// DNS happens on the server.
type StreamRequest struct {
	Version byte
	Kind    Kind
	Host    string
	Port    uint16
}

// AppendStreamRequest appends the encoding of req to buf, so that a caller can send it in the
// same write as the stream's first payload.
func AppendStreamRequest(buf []byte, req StreamRequest) ([]byte, error) {
	if len(req.Host) == 0 || len(req.Host) > MaxHostLen {
		return nil, fmt.Errorf("%w: host length %d outside 1..%d", ErrProtocol, len(req.Host), MaxHostLen)
	}
	if req.Port == 0 {
		return nil, fmt.Errorf("%w: port 0", ErrProtocol)
	}
	buf = append(buf, req.Version, byte(req.Kind), byte(len(req.Host)))
	buf = append(buf, req.Host...)
	buf = append(buf, byte(req.Port>>8), byte(req.Port))
	return buf, nil
}

// WriteStreamRequest writes req in one Write call.
func WriteStreamRequest(w io.Writer, req StreamRequest) error {
	buf, err := AppendStreamRequest(make([]byte, 0, 5+len(req.Host)), req)
	if err != nil {
		return err
	}
	_, err = w.Write(buf)
	return err
}

// ReadStreamRequest reads a StreamRequest. It reads exactly the request's bytes and no more,
// so payload that the client sent along with it stays in r. A version other than Version is
// returned as read; an unknown kind, an empty host or port 0 is ErrProtocol.
func ReadStreamRequest(r io.Reader) (StreamRequest, error) {
	var head [3]byte
	if _, err := io.ReadFull(r, head[:]); err != nil {
		return StreamRequest{}, err
	}
	req := StreamRequest{Version: head[0], Kind: Kind(head[1])}
	if req.Version != Version {
		return req, nil
	}
	n := int(head[2])
	if n == 0 {
		return StreamRequest{}, fmt.Errorf("%w: empty host", ErrProtocol)
	}
	rest := make([]byte, n+2)
	if _, err := io.ReadFull(r, rest); err != nil {
		return StreamRequest{}, err
	}
	req.Host = string(rest[:n])
	req.Port = uint16(rest[n])<<8 | uint16(rest[n+1])
	if req.Kind != KindNet && req.Kind != KindTLS {
		return StreamRequest{}, fmt.Errorf("%w: unknown stream kind %d", ErrProtocol, byte(req.Kind))
	}
	if req.Port == 0 {
		return StreamRequest{}, fmt.Errorf("%w: port 0", ErrProtocol)
	}
	return req, nil
}

// Reply answers a Hello or a StreamRequest.
type Reply struct {
	Status  Status
	Message string // for people; cut to at most MaxMessageLen bytes, on a character boundary, on write
}

// Err returns nil for StatusOK, else an *Error carrying the status and message.
func (r Reply) Err() error {
	if r.Status == StatusOK {
		return nil
	}
	return &Error{Status: r.Status, Message: r.Message}
}

// AppendReply appends the encoding of r to buf.
func AppendReply(buf []byte, r Reply) []byte {
	msg := r.Message
	if len(msg) > MaxMessageLen {
		cut := MaxMessageLen
		for cut > 0 && !utf8.RuneStart(msg[cut]) {
			cut--
		}
		msg = msg[:cut]
	}
	buf = append(buf, byte(r.Status), byte(len(msg)))
	return append(buf, msg...)
}

// WriteReply writes r in one Write call.
func WriteReply(w io.Writer, r Reply) error {
	_, err := w.Write(AppendReply(make([]byte, 0, 2+len(r.Message)), r))
	return err
}

// ReadReply reads a Reply.
func ReadReply(r io.Reader) (Reply, error) {
	var head [2]byte
	if _, err := io.ReadFull(r, head[:]); err != nil {
		return Reply{}, err
	}
	msg := make([]byte, head[1])
	if _, err := io.ReadFull(r, msg); err != nil {
		return Reply{}, err
	}
	return Reply{Status: Status(head[0]), Message: string(msg)}, nil
}

// MuxConfig returns the yamux configuration both ends of a tunnel use. The window and
// keepalive values are part of the protocol's behaviour: a 4 MiB stream window keeps a
// single stream from stalling on a long, fast path (a server grants a smaller one, as it
// holds the window for every stream of every tunnel), and keepalive pings every
// KeepaliveInterval let either side notice a dead tunnel within about
// KeepaliveInterval + WriteTimeout.
func MuxConfig() *yamux.Config {
	c := yamux.DefaultConfig()
	c.MaxStreamWindowSize = 4 << 20
	c.EnableKeepAlive = true
	c.KeepAliveInterval = KeepaliveInterval
	c.ConnectionWriteTimeout = WriteTimeout
	c.StreamOpenTimeout = 30 * time.Second
	c.StreamCloseTimeout = 5 * time.Minute
	c.LogOutput = io.Discard
	return c
}

// Keepalive timing shared by both ends (see MuxConfig).
const (
	KeepaliveInterval = 15 * time.Second
	WriteTimeout      = 10 * time.Second
)
