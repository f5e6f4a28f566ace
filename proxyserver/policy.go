package proxyserver

import (
	"net/netip"
	"strconv"
	"strings"

	"github.com/tessel/tessel-proxy/internal/hostport"
	"github.com/tessel/tessel-proxy/wire"
)

// Policy decides which resolved addresses the server may dial on a client's behalf. The zero
// Policy refuses every address in the special-purpose ranges listed by DeniedReason and allows
// the rest of the Internet; Allow opens chosen ranges again (for a proxy in front of a private
// network, or loopback targets in development).
//
// The policy is judged on the address that is actually dialed, after the server resolved the
// host itself, so a name that resolves to a private address is refused like the address is.
type Policy struct {
	// Allow lists prefixes that are allowed even though DeniedReason would refuse them.
	// An IPv4 prefix also matches the IPv4-mapped, IPv4-compatible, IPv4-translated, NAT64,
	// 6to4 and Teredo spellings of the addresses inside it.
	Allow []netip.Prefix
}

// deniedRange is one special-purpose range and why it is refused.
type deniedRange struct {
	prefix netip.Prefix
	reason string
}

// Ordered so that the most specific reason wins (metadata before link-local).
var deniedRanges = []deniedRange{
	{netip.MustParsePrefix("169.254.169.254/32"), "cloud metadata"},
	{netip.MustParsePrefix("fd00:ec2::254/128"), "cloud metadata"},
	{netip.MustParsePrefix("0.0.0.0/8"), "this-network (0.0.0.0/8)"},
	{netip.MustParsePrefix("10.0.0.0/8"), "private (RFC 1918)"},
	{netip.MustParsePrefix("100.64.0.0/10"), "shared address space (CGNAT)"},
	{netip.MustParsePrefix("127.0.0.0/8"), "loopback"},
	{netip.MustParsePrefix("169.254.0.0/16"), "link-local"},
	{netip.MustParsePrefix("172.16.0.0/12"), "private (RFC 1918)"},
	{netip.MustParsePrefix("192.168.0.0/16"), "private (RFC 1918)"},
	{netip.MustParsePrefix("224.0.0.0/4"), "multicast"},
	{netip.MustParsePrefix("240.0.0.0/4"), "reserved or broadcast"},
	{netip.MustParsePrefix("::/128"), "unspecified"},
	{netip.MustParsePrefix("::1/128"), "loopback"},
	{netip.MustParsePrefix("fc00::/7"), "unique-local"},
	{netip.MustParsePrefix("fe80::/10"), "link-local"},
	{netip.MustParsePrefix("fec0::/10"), "site-local"},
	{netip.MustParsePrefix("ff00::/8"), "multicast"},
	// Local-use NAT64 (RFC 8215) reaches whatever the operator's translator reaches.
	{netip.MustParsePrefix("64:ff9b:1::/48"), "local-use NAT64"},
}

// Prefixes whose addresses embed an IPv4 address in a fixed place; the embedded address is
// judged as well, so that ::ffff:127.0.0.1 or 64:ff9b::a00:1 cannot reach what 127.0.0.1 or
// 10.0.0.1 cannot.
var (
	ipv4Compatible = netip.MustParsePrefix("::/96")           // deprecated ::a.b.c.d
	ipv4Translated = netip.MustParsePrefix("::ffff:0:0:0/96") // SIIT (RFC 2765) ::ffff:0:a.b.c.d
	nat64          = netip.MustParsePrefix("64:ff9b::/96")    // RFC 6052 well-known prefix
	sixToFour      = netip.MustParsePrefix("2002::/16")       // RFC 3056, v4 in bits 16..47
	teredo         = netip.MustParsePrefix("2001::/32")       // RFC 4380, see embeddedIPv4
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
	case nat64.Contains(addr), ipv4Translated.Contains(addr),
		ipv4Compatible.Contains(addr) && addr != netip.IPv6Unspecified() && addr != netip.IPv6Loopback():
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

// DeniedReason reports why addr is in a range the server refuses by default ("loopback",
// "private (RFC 1918)", "cloud metadata", ...), or "" when it is an ordinary public address.
// It ignores Allow; see Policy.Check.
func DeniedReason(addr netip.Addr) string {
	addr = addr.WithZone("")
	for _, r := range deniedRanges {
		if r.prefix.Contains(addr) {
			return r.reason
		}
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
