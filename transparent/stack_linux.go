package transparent

import (
	"context"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"net/netip"
	"strconv"
	"sync"
	"time"

	"github.com/tessel/tessel-proxy/internal/relay"
	"gvisor.dev/gvisor/pkg/buffer"
	"gvisor.dev/gvisor/pkg/tcpip"
	"gvisor.dev/gvisor/pkg/tcpip/adapters/gonet"
	"gvisor.dev/gvisor/pkg/tcpip/header"
	"gvisor.dev/gvisor/pkg/tcpip/link/fdbased"
	"gvisor.dev/gvisor/pkg/tcpip/network/ipv4"
	"gvisor.dev/gvisor/pkg/tcpip/network/ipv6"
	"gvisor.dev/gvisor/pkg/tcpip/stack"
	"gvisor.dev/gvisor/pkg/tcpip/transport/icmp"
	"gvisor.dev/gvisor/pkg/tcpip/transport/tcp"
	"gvisor.dev/gvisor/pkg/tcpip/transport/udp"
	"gvisor.dev/gvisor/pkg/waiter"
)

const (
	nicID = 1
	// dialTimeout bounds one connection's dial: the program's connect() waits that long.
	dialTimeout = 30 * time.Second
	// maxPendingConnections bounds the connections being dialed at once; SYNs beyond it are
	// dropped, and the program's kernel sends them again.
	maxPendingConnections = 1024
	// TCP buffers of the stack's side of each connection: large enough for a loopback-speed
	// bulk transfer; receive buffers grow to the maximum only when a connection needs it.
	tcpBufferDefault = 1 << 20
	tcpBufferMax     = 8 << 20
	// earlyDataWait is how long a connection accepted before its dial waits for the
	// program's first bytes, and earlyDataMax how many it takes along with the dial.
	earlyDataWait = 3 * time.Millisecond
	earlyDataMax  = 16 << 10
)

// netStack is the userspace TCP/IP stack on the TUN device's far end: it accepts every TCP
// connection the namespace makes, dials its target with Config.Dial and relays the bytes,
// answers DNS at the gateway, and refuses everything else.
type netStack struct {
	cfg   Config
	s     *stack.Stack
	names *nameTable
	dns   *resolver

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup

	reached *reachedTargets

	mu    sync.Mutex
	conns map[io.Closer]struct{} // every open connection, closed by close
	udp   []*gonet.UDPConn
}

// startStack runs a stack on the TUN device fd (an IP-packet TUN, no packet information
// header). ipv6 says whether the namespace has IPv6 addresses and routes.
func startStack(fd int, cfg Config, withIPv6 bool) (*netStack, error) {
	ep, err := fdbased.New(&fdbased.Options{
		FDs: []int{fd},
		MTU: uint32(cfg.MTU),
		// The kernel computed the checksums of what it hands us; what we send back, it checks.
		RXChecksumOffload: true,
		// One processor handles each packet in the goroutine that read it, instead of
		// handing it to another: a goroutine switch less per packet.
		ProcessorsPerChannel: 1,
	})
	if err != nil {
		return nil, err
	}
	s := stack.New(stack.Options{
		NetworkProtocols:   []stack.NetworkProtocolFactory{ipv4.NewProtocol, ipv6.NewProtocol},
		TransportProtocols: []stack.TransportProtocolFactory{tcp.NewProtocol, udp.NewProtocol, icmp.NewProtocol4, icmp.NewProtocol6},
	})
	ctx, cancel := context.WithCancel(context.Background())
	n := &netStack{
		cfg: cfg, s: s, ctx: ctx, cancel: cancel,
		names:   newNameTable(cfg.MaxNames, cfg.NameIdle, time.Now),
		conns:   make(map[io.Closer]struct{}),
		reached: newReachedTargets(4096, 30*time.Second, time.Now),
	}
	n.dns = &resolver{
		names: n.names, locals: newLocalNames(cfg.MaxNames, cfg.NameIdle, time.Now), local: cfg.Local, ttl: uint32(cfg.DNSTTL / time.Second), ipv6: withIPv6,
		lookup: net.DefaultResolver.LookupNetIP, lookupAddr: net.DefaultResolver.LookupAddr,
		wait: 5 * time.Second,
	}
	if err := n.configure(ep); err != nil {
		n.close()
		return nil, err
	}
	return n, nil
}

func (n *netStack) configure(ep stack.LinkEndpoint) error {
	s := n.s
	moderate, sack := tcpip.TCPModerateReceiveBufferOption(true), tcpip.TCPSACKEnabled(true)
	for _, opt := range []tcpip.SettableTransportProtocolOption{
		&tcpip.TCPReceiveBufferSizeRangeOption{Min: tcp.MinBufferSize, Default: tcpBufferDefault, Max: tcpBufferMax},
		&tcpip.TCPSendBufferSizeRangeOption{Min: tcp.MinBufferSize, Default: tcpBufferDefault, Max: tcpBufferMax},
		&moderate, &sack,
	} {
		if err := s.SetTransportProtocolOption(tcp.ProtocolNumber, opt); err != nil {
			return errors.New("netstack: tcp option: " + err.String())
		}
	}
	if err := s.CreateNIC(nicID, ep); err != nil {
		return errors.New("netstack: create NIC: " + err.String())
	}
	// Promiscuous: accept packets to any address (every destination is ours to terminate);
	// spoofing: answer from that address.
	s.SetPromiscuousMode(nicID, true)
	s.SetSpoofing(nicID, true)
	for _, a := range []netip.Addr{gateway4, gateway6} {
		proto := ipv4.ProtocolNumber
		if a.Is6() {
			proto = ipv6.ProtocolNumber
		}
		pa := tcpip.ProtocolAddress{Protocol: proto, AddressWithPrefix: tcpip.AddrFromSlice(a.AsSlice()).WithPrefix()}
		if err := s.AddProtocolAddress(nicID, pa, stack.AddressProperties{}); err != nil {
			return errors.New("netstack: add address " + a.String() + ": " + err.String())
		}
	}
	s.SetRouteTable([]tcpip.Route{
		{Destination: header.IPv4EmptySubnet, NIC: nicID},
		{Destination: header.IPv6EmptySubnet, NIC: nicID},
	})
	fwd := tcp.NewForwarder(s, 0, maxPendingConnections, n.handleTCP)
	s.SetTransportProtocolHandler(tcp.ProtocolNumber, fwd.HandlePacket)
	s.SetTransportProtocolHandler(icmp.ProtocolNumber4, n.refuseEcho4)
	s.SetTransportProtocolHandler(icmp.ProtocolNumber6, n.refuseEcho6)

	// DNS over UDP at the gateway. UDP to anywhere else finds no endpoint, and the stack
	// answers it with ICMP port unreachable.
	for _, a := range []netip.Addr{gateway4, gateway6} {
		proto := ipv4.ProtocolNumber
		if a.Is6() {
			proto = ipv6.ProtocolNumber
		}
		c, err := gonet.DialUDP(s, &tcpip.FullAddress{NIC: nicID, Addr: tcpip.AddrFromSlice(a.AsSlice()), Port: 53}, nil, proto)
		if err != nil {
			return errors.New("netstack: DNS on " + a.String() + ": " + err.Error())
		}
		n.udp = append(n.udp, c)
		if n.begin() {
			go n.serveDNSUDP(c)
		}
	}
	return nil
}

// close stops the stack and every connection through it, and waits for its goroutines.
func (n *netStack) close() {
	n.mu.Lock()
	n.cancel()
	for _, c := range n.udp {
		c.Close()
	}
	for c := range n.conns {
		c.Close()
	}
	n.mu.Unlock()
	n.s.Destroy()
	n.wg.Wait()
}

// track registers c to be closed by close; it returns false (and closes c) when the stack
// is already closing.
func (n *netStack) track(c io.Closer) bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.ctx.Err() != nil {
		c.Close()
		return false
	}
	n.conns[c] = struct{}{}
	return true
}

func (n *netStack) untrack(c io.Closer) {
	n.mu.Lock()
	delete(n.conns, c)
	n.mu.Unlock()
}

// target says where a connection to dst goes: the host to dial, or false to refuse it.
func (n *netStack) target(dst netip.Addr) (string, bool) {
	if dst == gateway4 || dst == gateway6 {
		// The gateway stands for this machine's loopback, where PROXY_LOCAL lets it through.
		return "127.0.0.1", n.cfg.Local("127.0.0.1")
	}
	if i, ok := syntheticIndex(dst); ok {
		return n.names.name(i)
	}
	// An address the program learnt from an answer for a local name is dialed by that
	// name, so that a PROXY_LOCAL rule for the name routes it direct.
	if name, ok := n.dns.locals.name(dst); ok {
		return name, true
	}
	return dst.String(), true
}

func (n *netStack) handleTCP(r *tcp.ForwarderRequest) {
	if !n.begin() {
		r.Complete(true)
		return
	}
	defer n.wg.Done()
	id := r.ID()
	dst, _ := netip.AddrFromSlice(id.LocalAddress.AsSlice())
	port := id.LocalPort
	if (dst == gateway4 || dst == gateway6) && port == 53 {
		if c, ok := n.accept(r); ok {
			n.serveDNSTCP(c)
		}
		return
	}
	host, ok := n.target(dst)
	if !ok {
		n.cfg.Log.Debug("transparent: refused", "dst", dst, "port", port, "reason", "no such synthetic address, or the gateway is not local")
		r.Complete(true)
		return
	}
	key := net.JoinHostPort(host, strconv.Itoa(int(port)))
	ctx, cancel := context.WithTimeout(n.ctx, dialTimeout)
	defer cancel()

	if n.cfg.DialEarly != nil && n.reached.recent(key) {
		// This target took a connection a moment ago: accept at once and send the
		// program's first bytes with the dial, which saves the dial's round trip. Should
		// the dial fail after all, the program's connection is reset.
		down, ok := n.accept(r)
		if !ok {
			return
		}
		defer n.untrack(down)
		early, err := firstData(down)
		if err != nil {
			down.abort()
			return
		}
		up, err := n.cfg.DialEarly(ctx, host, port, early)
		if err != nil {
			n.reached.forget(key)
			n.cfg.Log.Debug("transparent: dial failed", "host", host, "port", port, "err", err)
			down.abort()
			return
		}
		n.reached.mark(key)
		if n.track(up) {
			defer n.untrack(up)
			n.relay(down, up)
		}
		return
	}

	// Otherwise the dial comes first, so that a target that cannot be reached refuses the
	// program's connection (ECONNREFUSED) as a real one would.
	up, err := n.cfg.Dial(ctx, host, port)
	if err != nil {
		n.reached.forget(key)
		n.cfg.Log.Debug("transparent: dial failed", "host", host, "port", port, "err", err)
		r.Complete(true)
		return
	}
	n.reached.mark(key)
	if !n.track(up) {
		r.Complete(true)
		return
	}
	defer n.untrack(up)
	down, ok := n.accept(r)
	if !ok {
		up.Close()
		return
	}
	defer n.untrack(down)
	n.relay(down, up)
}

// firstData waits a moment for the program's first bytes on a new connection: clients of
// most protocols (HTTP, TLS) speak first, at once. It returns nil when none came in time
// (the server speaks first) or the program closed its side.
func firstData(c *stackConn) ([]byte, error) {
	c.SetReadDeadline(time.Now().Add(earlyDataWait))
	buf := make([]byte, earlyDataMax)
	n, err := c.Read(buf)
	c.SetReadDeadline(time.Time{})
	var ne net.Error
	switch {
	case err == nil, errors.Is(err, io.EOF):
		return buf[:n], nil
	case errors.As(err, &ne) && ne.Timeout():
		return nil, nil
	}
	return nil, err
}

// begin counts a goroutine of the stack in, unless the stack is closing.
func (n *netStack) begin() bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.ctx.Err() != nil {
		return false
	}
	n.wg.Add(1)
	return true
}

// accept completes the handshake of the program's connection.
func (n *netStack) accept(r *tcp.ForwarderRequest) (*stackConn, bool) {
	var wq waiter.Queue
	ep, err := r.CreateEndpoint(&wq)
	if err != nil {
		r.Complete(true)
		return nil, false
	}
	r.Complete(false)
	c := &stackConn{TCPConn: gonet.NewTCPConn(&wq, ep), ep: ep}
	if !n.track(c) {
		return nil, false
	}
	return c, true
}

// stackConn is the stack's end of one of the program's connections.
type stackConn struct {
	*gonet.TCPConn
	ep tcpip.Endpoint
}

// abort resets the connection: the program reads ECONNRESET, not an end of stream.
func (c *stackConn) abort() {
	c.ep.Abort()
	c.TCPConn.Close()
}

// relay copies both ways until both directions end. An end of stream travels on as a
// half-close; an error on either side resets the other, so that a cut transfer never looks
// complete.
func (n *netStack) relay(down *stackConn, up net.Conn) {
	toUp := make(chan error, 1)
	go func() {
		_, err := relay.Copy(up, down, nil)
		if err == nil {
			if cw, ok := up.(interface{ CloseWrite() error }); ok {
				err = cw.CloseWrite()
			}
		}
		if err != nil {
			abort(up)
		}
		toUp <- err
	}()
	_, err := relay.Copy(down, up, nil)
	if err == nil {
		err = down.CloseWrite()
	}
	if err != nil {
		down.abort()
		up.Close()
		<-toUp
		return
	}
	if err := <-toUp; err != nil {
		down.abort()
		return
	}
	down.Close()
	up.Close()
}

// abort closes c with a reset when it is a kernel TCP connection.
func abort(c net.Conn) {
	if tc, ok := c.(*net.TCPConn); ok {
		tc.SetLinger(0)
	}
	c.Close()
}

func (n *netStack) serveDNSUDP(c *gonet.UDPConn) {
	defer n.wg.Done()
	buf := make([]byte, 4096)
	for {
		nr, from, err := c.ReadFrom(buf)
		if err != nil {
			return
		}
		query := append([]byte(nil), buf[:nr]...)
		if !n.begin() {
			return
		}
		go func() {
			defer n.wg.Done()
			if resp := n.dns.answer(n.ctx, query); resp != nil {
				c.WriteTo(resp, from)
			}
		}()
	}
}

// serveDNSTCP answers queries on one DNS-over-TCP connection (each message prefixed with
// its length in two bytes) until the program closes it.
func (n *netStack) serveDNSTCP(c *stackConn) {
	defer n.untrack(c)
	defer c.Close()
	for {
		c.SetReadDeadline(time.Now().Add(30 * time.Second))
		var l [2]byte
		if _, err := io.ReadFull(c, l[:]); err != nil {
			return
		}
		query := make([]byte, binary.BigEndian.Uint16(l[:]))
		if _, err := io.ReadFull(c, query); err != nil {
			return
		}
		resp := n.dns.answer(n.ctx, query)
		if resp == nil {
			return
		}
		if _, err := c.Write(append(binary.BigEndian.AppendUint16(nil, uint16(len(resp))), resp...)); err != nil {
			return
		}
	}
}

// refuseEcho4 answers an ICMP echo request with host unreachable: ICMP is not carried.
func (n *netStack) refuseEcho4(id stack.TransportEndpointID, pkt *stack.PacketBuffer) bool {
	icmpHdr := header.ICMPv4(pkt.TransportHeader().Slice())
	if len(icmpHdr) < header.ICMPv4MinimumSize || icmpHdr.Type() != header.ICMPv4Echo {
		return false
	}
	ipHdr := header.IPv4(pkt.NetworkHeader().Slice())
	quoted := append(append([]byte(nil), ipHdr...), firstBytes(pkt, 8)...)
	b := make([]byte, header.IPv4MinimumSize+header.ICMPv4MinimumSize+len(quoted))
	ip := header.IPv4(b)
	ip.Encode(&header.IPv4Fields{
		TotalLength: uint16(len(b)), TTL: 64, Protocol: uint8(header.ICMPv4ProtocolNumber),
		SrcAddr: ipHdr.DestinationAddress(), DstAddr: ipHdr.SourceAddress(),
	})
	ip.SetChecksum(^ip.CalculateChecksum())
	msg := header.ICMPv4(b[header.IPv4MinimumSize:])
	msg.SetType(header.ICMPv4DstUnreachable)
	msg.SetCode(header.ICMPv4HostUnreachable)
	copy(msg[header.ICMPv4MinimumSize:], quoted)
	msg.SetChecksum(^checksum(msg))
	n.s.WriteRawPacket(nicID, header.IPv4ProtocolNumber, buffer.MakeWithData(b))
	return true
}

// refuseEcho6 answers an ICMPv6 echo request with address unreachable.
func (n *netStack) refuseEcho6(id stack.TransportEndpointID, pkt *stack.PacketBuffer) bool {
	icmpHdr := header.ICMPv6(pkt.TransportHeader().Slice())
	if len(icmpHdr) < header.ICMPv6MinimumSize || icmpHdr.Type() != header.ICMPv6EchoRequest {
		return false
	}
	ipHdr := header.IPv6(pkt.NetworkHeader().Slice())
	quoted := append(append([]byte(nil), ipHdr...), firstBytes(pkt, 64)...)
	b := make([]byte, header.IPv6MinimumSize+header.ICMPv6MinimumSize+4+len(quoted))
	ip := header.IPv6(b)
	src, dst := ipHdr.DestinationAddress(), ipHdr.SourceAddress()
	ip.Encode(&header.IPv6Fields{
		PayloadLength: uint16(len(b) - header.IPv6MinimumSize), TransportProtocol: header.ICMPv6ProtocolNumber,
		HopLimit: 64, SrcAddr: src, DstAddr: dst,
	})
	msg := header.ICMPv6(b[header.IPv6MinimumSize:])
	msg.SetType(header.ICMPv6DstUnreachable)
	msg.SetCode(header.ICMPv6AddressUnreachable)
	copy(msg[header.ICMPv6MinimumSize+4:], quoted)
	msg.SetChecksum(header.ICMPv6Checksum(header.ICMPv6ChecksumParams{Header: msg, Src: src, Dst: dst}))
	n.s.WriteRawPacket(nicID, header.IPv6ProtocolNumber, buffer.MakeWithData(b))
	return true
}

// firstBytes returns up to max bytes of pkt's transport header and payload.
func firstBytes(pkt *stack.PacketBuffer, max int) []byte {
	out := append([]byte(nil), pkt.TransportHeader().Slice()...)
	out = append(out, pkt.Data().AsRange().ToSlice()...)
	if len(out) > max {
		out = out[:max]
	}
	return out
}

func checksum(b []byte) uint16 {
	var sum uint32
	for i := 0; i+1 < len(b); i += 2 {
		sum += uint32(b[i])<<8 | uint32(b[i+1])
	}
	if len(b)%2 == 1 {
		sum += uint32(b[len(b)-1]) << 8
	}
	for sum>>16 != 0 {
		sum = sum&0xffff + sum>>16
	}
	return uint16(sum)
}
