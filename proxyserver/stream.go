package proxyserver

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strings"
	"time"

	"github.com/hashicorp/yamux"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/tessel/tessel-proxy/internal/relay"
	"github.com/tessel/tessel-proxy/wire"
)

// startStream hands a newly accepted stream to its own goroutine, or refuses it with
// StatusLimit when the tunnel has MaxStreams streams already or its identity's budget has
// no room for another. Every stream counts against both until it is gone, refused ones
// included.
func (t *tunnel) startStream(stream *yamux.Stream) {
	t.mu.Lock()
	overLimit := t.streams >= t.s.cfg.MaxStreams
	if !overLimit {
		t.streams++
	}
	t.mu.Unlock()
	var why string
	if overLimit {
		why = fmt.Sprintf("this tunnel has %d streams open, the server's maximum", t.s.cfg.MaxStreams)
	} else if why = t.s.budgets.reserveStream(t.use); why != "" {
		t.mu.Lock()
		t.streams--
		t.mu.Unlock()
	}
	if why != "" {
		// Answered here, in the accept loop, one at a time: however fast a client opens
		// streams past the limits, the server holds one of them, plus the few that
		// muxconn lets yamux queue.
		t.s.m.streamsTotal.WithLabelValues(statusLabel(wire.StatusLimit)).Inc()
		t.log.Warn("stream refused", "stream", stream.StreamID(), "status", statusLabel(wire.StatusLimit), "reason", why)
		t.refuse(stream, wire.Reply{Status: wire.StatusLimit, Message: why})
		return
	}
	t.s.m.streamsOpen.Inc()
	t.streamWG.Add(1)
	go func() {
		defer func() {
			t.s.budgets.releaseStream(t.use)
			t.s.m.streamsOpen.Dec()
			t.mu.Lock()
			t.streams--
			t.mu.Unlock()
			t.streamWG.Done()
		}()
		t.serveStream(stream)
	}()
}

// refuse answers stream with reply, closes it, and drops it from the session at once,
// with whatever the client sent on it: yamux would keep a stream the client does not close
// in turn, receive buffer and all, for StreamCloseTimeout.
func (t *tunnel) refuse(stream *yamux.Stream, reply wire.Reply) {
	// A client that does not read its replies gets no more time than it has for a request.
	_ = stream.SetWriteDeadline(time.Now().Add(t.s.cfg.HandshakeTimeout))
	_ = wire.WriteReply(stream, reply)
	t.drop(stream)
}

// drop closes stream (the client gets a FIN after what was written) and drops it from the
// session.
func (t *tunnel) drop(stream *yamux.Stream) {
	stream.Close()
	t.mux.ResetStream(stream.StreamID())
}

// serveStream reads the stream's request, dials the target, answers, and relays.
func (t *tunnel) serveStream(stream *yamux.Stream) {
	s := t.s
	log := t.log.With("stream", stream.StreamID())
	start := time.Now()
	refuse := func(status wire.Status, target string, err error) {
		s.m.streamsTotal.WithLabelValues(statusLabel(status)).Inc()
		log.Info("stream refused", "target", target, "status", statusLabel(status), "err", err)
		t.refuse(stream, wire.Reply{Status: status, Message: replyMessage(err)})
	}

	_ = stream.SetReadDeadline(start.Add(s.cfg.HandshakeTimeout))
	req, err := wire.ReadStreamRequest(stream)
	if err != nil {
		if errors.Is(err, wire.ErrProtocol) {
			refuse(wire.StatusBadRequest, "", err)
			return
		}
		// The client went away or never sent a request: nobody to answer.
		log.Debug("stream request not read", "err", err)
		t.drop(stream)
		return
	}
	if req.Version != wire.Version {
		refuse(wire.StatusBadVersion, "", fmt.Errorf("stream request version %d: this server speaks %d", req.Version, wire.Version))
		return
	}
	_ = stream.SetReadDeadline(time.Time{})
	target := net.JoinHostPort(req.Host, fmt.Sprint(req.Port))
	if req.Kind == wire.KindTLS && s.cfg.DisableTLSStreams {
		refuse(wire.StatusDenied, target, errors.New("this server does not make TLS connections for clients: connect with PROXY_TRUSTED=0"))
		return
	}

	conn, status, err := s.dialTarget(req)
	if status != wire.StatusOK {
		refuse(status, target, err)
		return
	}
	if !t.addTarget(conn) {
		conn.Close()
		refuse(wire.StatusInternal, target, errors.New("the tunnel is closing"))
		return
	}
	defer t.removeTarget(conn)
	s.m.streamsTotal.WithLabelValues(statusLabel(wire.StatusOK)).Inc()
	if err := wire.WriteReply(stream, wire.Reply{Status: wire.StatusOK}); err != nil {
		conn.Close()
		t.drop(stream)
		return
	}
	log.Debug("stream open", "target", target, "kind", req.Kind.String(), "addr", conn.RemoteAddr().String())
	in, out := pipe(stream, conn, s.m.bytesIn, s.m.bytesOut)
	log.Debug("stream closed", "target", target, "bytes_in", in, "bytes_out", out,
		"duration", time.Since(start).Round(time.Millisecond))
}

func (t *tunnel) addTarget(c net.Conn) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.closed {
		return false
	}
	t.targets[c] = struct{}{}
	return true
}

func (t *tunnel) removeTarget(c net.Conn) {
	t.mu.Lock()
	delete(t.targets, c)
	t.mu.Unlock()
}

// replyMessage turns err into a Reply message (wire cuts it to length): a *replyError's
// public text, else err's.
func replyMessage(err error) string {
	if err == nil {
		return ""
	}
	if re := (*replyError)(nil); errors.As(err, &re) {
		return re.public
	}
	return err.Error()
}

// replyError is a refusal whose detail (the server's resolver, the addresses a name
// resolved to) is for the server's log only: the client is told public.
type replyError struct {
	public string
	err    error
}

func (e *replyError) Error() string { return e.err.Error() }
func (e *replyError) Unwrap() error { return e.err }

// dialTarget resolves req.Host, judges each address against the policy, and connects to the
// first allowed address that answers, making a TLS connection on top for tls streams. It
// returns the status to reply with and, when not ok, why.
func (s *Server) dialTarget(req wire.StreamRequest) (net.Conn, wire.Status, error) {
	ctx, cancel := context.WithTimeout(s.ctx, s.cfg.DialTimeout)
	defer cancel()

	addrs, status, err := s.resolve(ctx, req.Host)
	if status != wire.StatusOK {
		return nil, status, err
	}
	lit, literal := ParseHostAddr(req.Host)
	status, err = wire.StatusDenied, nil
	allowed := addrs[:0]
	for _, addr := range addrs {
		if perr := s.checkTarget(addr); perr != nil {
			if err == nil {
				err = perr
				if de := (*DeniedError)(nil); !literal && errors.As(perr, &de) {
					err = &replyError{public: fmt.Sprintf("%s: refused by the server's destination policy (%s)", req.Host, de.Reason),
						err: fmt.Errorf("%s: %w", req.Host, perr)}
				}
			}
			continue
		}
		allowed = append(allowed, addr)
	}
	for i, addr := range allowed {
		// The policy judged addr; dial exactly addr, so no second lookup can swap it.
		ap := netip.AddrPortFrom(addr.Unmap(), req.Port).String()
		conn, derr := s.dialOne(ctx, ap, len(allowed)-i)
		if derr != nil {
			status, _ = wire.StatusOf(ctx, derr) // unknown: unreachable
			err = fmt.Errorf("connect to %s: %w", ap, unwrapOpError(derr))
			if ctx.Err() != nil {
				break
			}
			continue
		}
		if req.Kind != wire.KindTLS {
			return conn, wire.StatusOK, nil
		}
		serverName := req.Host
		if literal {
			serverName = lit.String()
		}
		tconn := tls.Client(conn, &tls.Config{
			ServerName: serverName,
			RootCAs:    s.cfg.TargetRootCAs,
			MinVersion: tls.VersionTLS12,
		})
		if herr := tconn.HandshakeContext(ctx); herr != nil {
			conn.Close()
			if ctx.Err() != nil {
				return nil, wire.StatusTimeout, fmt.Errorf("TLS handshake with %s: %w", ap, herr)
			}
			return nil, wire.StatusTLSFailure, fmt.Errorf("TLS handshake with %s: %w", ap, herr)
		}
		return tconn, wire.StatusOK, nil
	}
	return nil, status, err
}

// dialOne dials ap with its share of what is left of ctx's deadline, left addresses (this
// one included) still to try, so that one address that drops packets (a broken IPv6 path)
// does not use up the time of the others. As net.Dialer does, a share is at least 2 s when
// that much is left.
func (s *Server) dialOne(ctx context.Context, ap string, left int) (net.Conn, error) {
	if deadline, ok := ctx.Deadline(); ok && left > 1 {
		const saneMinimum = 2 * time.Second
		remaining := time.Until(deadline)
		share := max(remaining/time.Duration(left), min(saneMinimum, remaining))
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, share)
		defer cancel()
	}
	return s.cfg.Dialer.DialContext(ctx, "tcp", ap)
}

// resolve returns the addresses of host: the host itself when it is an IP address in any
// spelling (see ParseHostAddr), else what the resolver says.
func (s *Server) resolve(ctx context.Context, host string) ([]netip.Addr, wire.Status, error) {
	for i := 0; i < len(host); i++ {
		if c := host[i]; c <= ' ' || c == 0x7f {
			return nil, wire.StatusBadRequest, fmt.Errorf("host %q contains a control character or space", host)
		}
	}
	if addr, ok := ParseHostAddr(host); ok {
		return []netip.Addr{addr}, wire.StatusOK, nil
	}
	name := strings.ToLower(strings.TrimSuffix(host, "."))
	if name == "invalid" || strings.HasSuffix(name, ".invalid") {
		// RFC 6761: such names never resolve, so do not ask anyone.
		return nil, wire.StatusDNSFailure, fmt.Errorf("%s: .invalid names never resolve", host)
	}
	addrs, err := s.cfg.Resolver.LookupNetIP(ctx, "ip", host)
	if err != nil {
		var dnsErr *net.DNSError
		switch {
		case errors.As(err, &dnsErr) && dnsErr.IsNotFound:
			return nil, wire.StatusDNSFailure, fmt.Errorf("%s: no such host", host)
		case ctx.Err() != nil && s.ctx.Err() == nil:
			return nil, wire.StatusDNSFailure, fmt.Errorf("%s: lookup timed out", host)
		}
		return nil, wire.StatusDNSFailure, &replyError{public: "DNS lookup of " + host + " failed", err: fmt.Errorf("resolve %s: %w", host, err)}
	}
	if len(addrs) == 0 {
		return nil, wire.StatusDNSFailure, fmt.Errorf("%s: no addresses", host)
	}
	for i := range addrs {
		// Resolvers may hand IPv4 results back in their IPv4-mapped form; the plain
		// form reads better in messages and is judged the same.
		addrs[i] = addrs[i].Unmap()
	}
	return addrs, wire.StatusOK, nil
}

// unwrapOpError drops net.OpError's "dial tcp a->b:" prefix, which repeats what the
// message around it says.
func unwrapOpError(err error) error {
	var op *net.OpError
	if errors.As(err, &op) && op.Err != nil {
		return op.Err
	}
	return err
}

// pipe relays between the client's stream and the target until both directions have
// ended, with relay.Pipe's half-close and abort rules, and returns the bytes relayed
// client->target (in) and target->client (out). An end of input towards the stream is a
// yamux FIN (its Close); yamux has no reset, so a failure also closes the stream with a FIN
// and then drains it until the client closes its side (see relay.Side.Drain).
func pipe(stream *yamux.Stream, target net.Conn, inCounter, outCounter prometheus.Counter) (in, out int64) {
	out, in = relay.Pipe(
		relay.Side{Conn: stream, CloseWrite: stream.Close, Drain: true,
			Count: func(n int) { outCounter.Add(float64(n)) }},
		relay.Side{Conn: target, Count: func(n int) { inCounter.Add(float64(n)) }},
		relay.Options{})
	return in, out
}
