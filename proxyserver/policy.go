package proxyserver

import (
	"log/slog"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/tessel/tessel-proxy/internal/hostport"
	"github.com/tessel/tessel-proxy/wire"
)

// Policy decides which resolved addresses the server may dial on a client's behalf. The zero
// Policy refuses every address that the IANA special-purpose address registries do not list
// as globally reachable (loopback, private, link-local, CGNAT, documentation, benchmarking,
// reserved, ...; see DeniedReason) and allows the rest of the Internet; Allow opens chosen
// ranges again (for a proxy in front of a private network, or loopback targets in
// development). A Server also refuses the addresses of its own interfaces unless Allow
// opens them.
//
// The policy is judged on the address that is actually dialed, after the server resolved the
// host itself, so a name that resolves to a private address is refused like the address is.
type Policy struct {
	// Allow lists prefixes that are allowed even though DeniedReason would refuse them.
	// An IPv4 prefix also matches the IPv4-mapped, NAT64, 6to4 and Teredo spellings of the
	// addresses inside it.
	Allow []netip.Prefix
}

// reach is what the IANA special-purpose address registries say in their "Globally
// Reachable" column about a range.
type reach uint8

const (
	notGlobal  reach = iota // False: not reachable beyond one network; refused
	global                  // True: reachable; reopens part of a wider range that is not
	embedsIPv4              // N/A: the address carries an IPv4 address, which is judged instead
)

// specialRange is one entry of the table below.
type specialRange struct {
	prefix netip.Prefix
	name   string // what the range is for, as it reads in a refusal
	rfc    string
	reach  reach
}

// specialRanges follows the IANA IPv4 and IPv6 Special-Purpose Address Registries (RFC 6890
// and the RFCs that updated them, as of 2025), plus the multicast and reserved blocks of
// the address-space registries and the cloud metadata addresses. The most specific entry
// that contains an address decides; an address in none of them is globally reachable.
var specialRanges = []specialRange{
	// IPv4.
	{pfx("0.0.0.0/8"), "this-network", "RFC 791", notGlobal},
	{pfx("0.0.0.0/32"), "this-host", "RFC 1122", notGlobal},
	{pfx("10.0.0.0/8"), "private-use", "RFC 1918", notGlobal},
	{pfx("100.64.0.0/10"), "shared address space (CGNAT)", "RFC 6598", notGlobal},
	{pfx("127.0.0.0/8"), "loopback", "RFC 1122", notGlobal},
	{pfx("169.254.0.0/16"), "link-local", "RFC 3927", notGlobal},
	{pfx("169.254.169.254/32"), "cloud metadata", "AWS, GCP, Azure, OpenStack", notGlobal},
	{pfx("172.16.0.0/12"), "private-use", "RFC 1918", notGlobal},
	{pfx("192.0.0.0/24"), "IETF protocol assignments", "RFC 6890", notGlobal},
	{pfx("192.0.0.0/29"), "IPv4 service continuity", "RFC 7335", notGlobal},
	{pfx("192.0.0.8/32"), "IPv4 dummy address", "RFC 7600", notGlobal},
	{pfx("192.0.0.9/32"), "port control protocol anycast", "RFC 7723", global},
	{pfx("192.0.0.10/32"), "TURN anycast", "RFC 8155", global},
	{pfx("192.0.0.170/31"), "NAT64/DNS64 discovery", "RFC 8880", notGlobal},
	{pfx("192.0.0.192/32"), "cloud metadata", "Oracle Cloud", notGlobal},
	{pfx("192.0.2.0/24"), "documentation (TEST-NET-1)", "RFC 5737", notGlobal},
	{pfx("192.31.196.0/24"), "AS112", "RFC 7535", global},
	{pfx("192.52.193.0/24"), "AMT", "RFC 7450", global},
	{pfx("192.88.99.0/24"), "deprecated 6to4 relay anycast", "RFC 7526", notGlobal},
	{pfx("192.168.0.0/16"), "private-use", "RFC 1918", notGlobal},
	{pfx("192.175.48.0/24"), "AS112 direct delegation", "RFC 7534", global},
	{pfx("198.18.0.0/15"), "benchmarking", "RFC 2544", notGlobal},
	{pfx("198.51.100.0/24"), "documentation (TEST-NET-2)", "RFC 5737", notGlobal},
	{pfx("203.0.113.0/24"), "documentation (TEST-NET-3)", "RFC 5737", notGlobal},
	{pfx("224.0.0.0/4"), "multicast", "RFC 5771", notGlobal},
	{pfx("240.0.0.0/4"), "reserved", "RFC 1112", notGlobal},
	{pfx("255.255.255.255/32"), "limited broadcast", "RFC 919", notGlobal},
	// A public address, but on an Azure machine it reaches the platform's own services.
	{pfx("168.63.129.16/32"), "cloud platform (Azure WireServer)", "Azure", notGlobal},

	// IPv6. Outside 2000::/3 the address space registry reserves everything but the blocks
	// listed after these three.
	{pfx("::/3"), "reserved", "RFC 4291", notGlobal},
	{pfx("4000::/2"), "reserved", "RFC 4291", notGlobal},
	{pfx("8000::/1"), "reserved", "RFC 4291", notGlobal},
	{pfx("::/128"), "unspecified", "RFC 4291", notGlobal},
	{pfx("::1/128"), "loopback", "RFC 4291", notGlobal},
	{pfx("::ffff:0:0/96"), "IPv4-mapped", "RFC 4291", embedsIPv4},
	{pfx("64:ff9b::/96"), "IPv4/IPv6 translation", "RFC 6052", embedsIPv4},
	{pfx("64:ff9b:1::/48"), "local-use IPv4/IPv6 translation", "RFC 8215", notGlobal},
	{pfx("100::/64"), "discard-only", "RFC 6666", notGlobal},
	{pfx("100:0:0:1::/64"), "dummy IPv6 prefix", "RFC 9780", notGlobal},
	{pfx("2001::/23"), "IETF protocol assignments", "RFC 2928", notGlobal},
	{pfx("2001::/32"), "Teredo", "RFC 4380", embedsIPv4},
	{pfx("2001:1::1/128"), "port control protocol anycast", "RFC 7723", global},
	{pfx("2001:1::2/128"), "TURN anycast", "RFC 8155", global},
	{pfx("2001:1::3/128"), "DNS-SD service registration anycast", "RFC 9665", global},
	{pfx("2001:2::/48"), "benchmarking", "RFC 5180", notGlobal},
	{pfx("2001:3::/32"), "AMT", "RFC 7450", global},
	{pfx("2001:4:112::/48"), "AS112", "RFC 7535", global},
	{pfx("2001:10::/28"), "deprecated ORCHID", "RFC 4843", notGlobal},
	{pfx("2001:20::/28"), "ORCHIDv2", "RFC 7343", global},
	{pfx("2001:30::/28"), "drone remote ID tags", "RFC 9374", global},
	{pfx("2001:db8::/32"), "documentation", "RFC 3849", notGlobal},
	{pfx("2002::/16"), "6to4", "RFC 3056", embedsIPv4},
	{pfx("2620:4f:8000::/48"), "AS112 direct delegation", "RFC 7534", global},
	{pfx("3fff::/20"), "documentation", "RFC 9637", notGlobal},
	{pfx("5f00::/16"), "segment routing (SRv6) SIDs", "RFC 9602", notGlobal},
	{pfx("fc00::/7"), "unique-local", "RFC 4193", notGlobal},
	{pfx("fd00:ec2::254/128"), "cloud metadata", "AWS", notGlobal},
	{pfx("fe80::/10"), "link-local", "RFC 4291", notGlobal},
	{pfx("fec0::/10"), "deprecated site-local", "RFC 3879", notGlobal},
	{pfx("ff00::/8"), "multicast", "RFC 4291", notGlobal},
}

func pfx(s string) netip.Prefix { return netip.MustParsePrefix(s) }

// specialRangeOf returns the most specific entry of specialRanges that contains addr.
func specialRangeOf(addr netip.Addr) (specialRange, bool) {
	best, found := specialRange{}, false
	for _, r := range specialRanges {
		if r.prefix.Contains(addr) && (!found || r.prefix.Bits() > best.prefix.Bits()) {
			best, found = r, true
		}
	}
	return best, found
}

// The IPv6 forms that route to an IPv4 address carry it in a fixed place; the embedded
// address is judged, so that ::ffff:127.0.0.1 or 64:ff9b::a00:1 cannot reach what 127.0.0.1
// or 10.0.0.1 cannot.
var (
	nat64     = pfx("64:ff9b::/96") // RFC 6052 well-known prefix
	sixToFour = pfx("2002::/16")    // RFC 3056, v4 in bits 16..47
	teredo    = pfx("2001::/32")    // RFC 4380, see embeddedIPv4
)

// embeddedIPv4 returns the IPv4 addresses that addr carries, if it is one of the IPv6 forms
// that route to an IPv4 address: one for most forms, two for Teredo (its server, and its
// client's mapped address, stored inverted), which a Teredo interface on this machine
// would send packets to.
func embeddedIPv4(addr netip.Addr) []netip.Addr {
	if addr.Is4In6() {
		return []netip.Addr{addr.Unmap()}
	}
	if !addr.Is6() {
		return nil
	}
	b := addr.As16()
	switch {
	case nat64.Contains(addr):
		return []netip.Addr{netip.AddrFrom4([4]byte(b[12:16]))}
	case sixToFour.Contains(addr):
		return []netip.Addr{netip.AddrFrom4([4]byte(b[2:6]))}
	case teredo.Contains(addr):
		return []netip.Addr{
			netip.AddrFrom4([4]byte(b[4:8])),
			netip.AddrFrom4([4]byte{^b[12], ^b[13], ^b[14], ^b[15]}),
		}
	}
	return nil
}

// DeniedReason reports why addr is in a range the server refuses by default: what the
// range is for and where it is defined ("loopback (RFC 1122)", "documentation (TEST-NET-1)
// (RFC 5737)", "cloud metadata (AWS, GCP, Azure, OpenStack)"), or "" when addr is globally
// reachable. It ignores Allow; see Policy.Check.
func DeniedReason(addr netip.Addr) string {
	addr = addr.WithZone("")
	r, ok := specialRangeOf(addr)
	if !ok {
		return ""
	}
	switch r.reach {
	case global:
		return ""
	case notGlobal:
		return r.name + " (" + r.rfc + ")"
	}
	for _, v4 := range embeddedIPv4(addr) {
		if reason := DeniedReason(v4); reason != "" {
			return reason + " (" + v4.String() + " inside)"
		}
	}
	return ""
}

// allowed reports whether addr is inside an Allow prefix, or every IPv4 address it embeds
// that the default policy refuses is.
func (p *Policy) allowed(addr netip.Addr) bool {
	if p == nil {
		return false
	}
	addr = addr.WithZone("")
	if p.contains(addr) {
		return true
	}
	embedded := embeddedIPv4(addr)
	if len(embedded) == 0 {
		return false
	}
	for _, v4 := range embedded {
		if DeniedReason(v4) != "" && !p.contains(v4) {
			return false
		}
	}
	return true
}

func (p *Policy) contains(addr netip.Addr) bool {
	for _, pre := range p.Allow {
		if pre.Contains(addr) {
			return true
		}
	}
	return false
}

// DeniedError is a Policy's refusal of one address. errors.Is(err, wire.ErrDenied) holds.
type DeniedError struct {
	Addr   netip.Addr
	Reason string // "loopback", "private (RFC 1918)", ...
}

// Error says which address and why: "127.0.0.1 is loopback".
func (e *DeniedError) Error() string { return e.Addr.String() + " is " + e.Reason }

// Unwrap makes a DeniedError match wire.ErrDenied.
func (e *DeniedError) Unwrap() error { return wire.ErrDenied }

// Check returns nil when the server may dial addr, else a *DeniedError that says which
// range refused it. A nil *Policy is the zero Policy.
func (p *Policy) Check(addr netip.Addr) error {
	if !addr.IsValid() {
		return &DeniedError{Addr: addr, Reason: "not a valid address"}
	}
	if addr.Zone() != "" {
		return &DeniedError{Addr: addr, Reason: "scoped to an interface (zones are not dialed)"}
	}
	reason := DeniedReason(addr)
	if reason == "" || p.allowed(addr) {
		return nil
	}
	return &DeniedError{Addr: addr, Reason: reason}
}

// checkTarget judges a resolved target address: the Policy, then the addresses of this
// machine's own interfaces, which reach the server's own services (an admin port, metrics
// on 0.0.0.0) or the server itself, unless Allow opens them.
func (s *Server) checkTarget(addr netip.Addr) error {
	if err := s.cfg.Policy.Check(addr); err != nil {
		return err
	}
	if s.own.has(addr) && !s.cfg.Policy.allowed(addr) {
		return &DeniedError{Addr: addr, Reason: "an address of this server's own interfaces"}
	}
	return nil
}

// ownAddrsMaxAge is how long the list of the interfaces' addresses is trusted before it is
// read again (on the next dial): an address added to an interface is refused within it.
const ownAddrsMaxAge = 5 * time.Second

// ownAddrs is the set of addresses assigned to this machine's interfaces, read when the
// server starts and again on a dial once ownAddrsMaxAge has passed: one netlink request
// every few seconds at most, a map lookup per dial.
type ownAddrs struct {
	list func() ([]net.Addr, error) // net.InterfaceAddrs
	log  *slog.Logger

	mu     sync.Mutex
	addrs  map[netip.Addr]struct{}
	readAt time.Time
	failed bool // the last read failed (logged once)
}

func newOwnAddrs(list func() ([]net.Addr, error), log *slog.Logger) *ownAddrs {
	o := &ownAddrs{list: list, log: log}
	o.mu.Lock()
	o.refreshLocked(time.Now())
	o.mu.Unlock()
	return o
}

// has reports whether addr (or its IPv4 form) is assigned to an interface here.
func (o *ownAddrs) has(addr netip.Addr) bool {
	now := time.Now()
	o.mu.Lock()
	defer o.mu.Unlock()
	if now.Sub(o.readAt) >= ownAddrsMaxAge {
		o.refreshLocked(now)
	}
	_, ok := o.addrs[addr.Unmap().WithZone("")]
	return ok
}

// refreshLocked reads the interfaces' addresses. A failed read keeps the previous set.
func (o *ownAddrs) refreshLocked(now time.Time) {
	o.readAt = now
	list, err := o.list()
	if err != nil {
		if !o.failed {
			o.log.Error("read this machine's interface addresses; keeping the last list", "err", err)
			o.failed = true
		}
		return
	}
	o.failed = false
	addrs := make(map[netip.Addr]struct{}, len(list))
	for _, a := range list {
		var ip net.IP
		switch a := a.(type) {
		case *net.IPNet:
			ip = a.IP
		case *net.IPAddr:
			ip = a.IP
		}
		if addr, ok := netip.AddrFromSlice(ip); ok {
			addrs[addr.Unmap()] = struct{}{}
		}
	}
	o.addrs = addrs
}

// ParseHostAddr reports whether host is an IP address, written the way netip writes it or in
// any of the numeric IPv4 forms that the C library's inet_aton accepts ("2130706433",
// "0177.0.0.1", "0x7f.1", "127.1"), and returns that address. Such a host is never looked up
// as a name: a resolver that hands it to getaddrinfo would otherwise turn it into an address
// that the policy never saw. An IPv6 literal may come with brackets.
func ParseHostAddr(host string) (netip.Addr, bool) {
	h, _ := hostport.Unbracket(host)
	if addr, err := netip.ParseAddr(h); err == nil {
		return addr, true
	}
	return parseInetAton(host)
}

// parseInetAton parses the IPv4 forms inet_aton(3) accepts: one to four parts separated by
// dots, each decimal, octal (leading 0) or hexadecimal (leading 0x), where the last part
// fills the remaining bytes ("127.1" is 127.0.0.1, "2130706433" is 127.0.0.1).
func parseInetAton(s string) (netip.Addr, bool) {
	if s == "" {
		return netip.Addr{}, false
	}
	parts := strings.Split(s, ".")
	if len(parts) > 4 {
		return netip.Addr{}, false
	}
	vals := make([]uint64, len(parts))
	for i, part := range parts {
		v, ok := parseInetAtonPart(part)
		if !ok {
			return netip.Addr{}, false
		}
		vals[i] = v
	}
	// Every part but the last is one byte; the last fills what is left.
	for _, v := range vals[:len(vals)-1] {
		if v > 0xff {
			return netip.Addr{}, false
		}
	}
	last := vals[len(vals)-1]
	if last >= 1<<(8*(5-len(vals))) {
		return netip.Addr{}, false
	}
	var n uint32
	for i, v := range vals[:len(vals)-1] {
		n |= uint32(v) << (8 * (3 - i))
	}
	n |= uint32(last)
	return netip.AddrFrom4([4]byte{byte(n >> 24), byte(n >> 16), byte(n >> 8), byte(n)}), true
}

func parseInetAtonPart(p string) (uint64, bool) {
	base := 10
	digits := p
	switch {
	case len(p) > 1 && (p[:2] == "0x" || p[:2] == "0X"):
		base, digits = 16, p[2:]
	case len(p) > 1 && p[0] == '0':
		base, digits = 8, p[1:]
	}
	if digits == "" {
		return 0, false
	}
	for _, c := range digits {
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F') {
			return 0, false
		}
	}
	v, err := strconv.ParseUint(digits, base, 32)
	if err != nil {
		return 0, false
	}
	return v, true
}
