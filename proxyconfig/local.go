package proxyconfig

import (
	"net/netip"
	"strings"
	"unicode"

	"github.com/tessel/tessel-proxy/internal/hostport"
)

// LocalList is a parsed PROXY_LOCAL: the hosts connected directly, never through the tunnel.
// The zero value matches nothing.
type LocalList struct {
	entries []localEntry
}

type entryKind int

const (
	kindAddr   entryKind = iota // one IP address
	kindPrefix                  // a CIDR prefix
	kindSuffix                  // .example.net: the name and every name under it
	kindName                    // one host name
)

type localEntry struct {
	text   string // as the user wrote it
	kind   entryKind
	addr   netip.Addr
	prefix netip.Prefix
	name   string // lower case, no trailing dot; for kindSuffix without the leading dot
}

// ParseLocal parses a PROXY_LOCAL value. Unset or empty means the default list, "none" means
// nothing is local; otherwise entries are separated by white space or commas.
func ParseLocal(s string) (LocalList, error) {
	if strings.TrimSpace(s) == "" {
		s = DefaultLocal
	}
	fields := strings.FieldsFunc(s, func(r rune) bool { return r == ',' || unicode.IsSpace(r) })
	if len(fields) == 1 && strings.EqualFold(fields[0], "none") {
		return LocalList{}, nil
	}
	var l LocalList
	for _, f := range fields {
		e, err := parseLocalEntry(f)
		if err != nil {
			return LocalList{}, err
		}
		l.entries = append(l.entries, e)
	}
	return l, nil
}

func parseLocalEntry(f string) (localEntry, error) {
	e := localEntry{text: f}
	switch {
	case strings.EqualFold(f, "none"):
		return e, varErr(VarLocal, "%q must stand alone: PROXY_LOCAL=none means nothing is local", f)
	case strings.Contains(f, "://"):
		return e, varErr(VarLocal, "%q is a URL; list only the host name", f)
	case strings.Contains(f, "/"):
		base, bits, _ := strings.Cut(f, "/")
		p, err := netip.ParsePrefix(unbracket(base) + "/" + bits)
		if err != nil {
			return e, varErr(VarLocal, "%q is not a CIDR prefix; write an address and a prefix length such as 10.0.0.0/8 or fd00::/8", f)
		}
		// A prefix written in IPv4-mapped IPv6 form covers IPv4 hosts, which Match sees unmapped.
		if p.Addr().Is4In6() && p.Bits() >= 96 {
			p = netip.PrefixFrom(p.Addr().Unmap(), p.Bits()-96)
		}
		// A prefix written with host bits set (192.168.0.255/4) means its masked prefix.
		e.kind, e.prefix = kindPrefix, p.Masked()
	default:
		if a, err := netip.ParseAddr(unbracket(f)); err == nil {
			e.kind, e.addr = kindAddr, a.WithZone("").Unmap()
			return e, nil
		}
		name := strings.ToLower(strings.TrimSuffix(f, "."))
		kind := kindName
		if strings.HasPrefix(name, ".") {
			kind, name = kindSuffix, name[1:]
		}
		switch {
		case strings.HasPrefix(f, "*."):
			return e, varErr(VarLocal, "%q: wildcards are not supported; write %q for the name and every name under it", f, f[1:])
		case strings.Contains(f, ":"):
			return e, varErr(VarLocal, "%q is not an IP address or host name (ports are not supported; list the host alone)", f)
		case name == "" || !validHostName(name):
			return e, varErr(VarLocal, "%q is not an IP address, CIDR prefix, host name or .domain suffix", f)
		}
		e.kind, e.name = kind, name
	}
	return e, nil
}

// Match reports whether host, exactly as a program asked for it (no DNS lookup), is local,
// and which entry made it so. An IP literal may carry brackets or a zone; an IPv4-mapped
// IPv6 address counts as its IPv4 address. Host names never match an address or prefix.
func (l LocalList) Match(host string) (entry string, ok bool) {
	h := unbracket(host)
	if a, err := netip.ParseAddr(h); err == nil {
		a = a.WithZone("").Unmap()
		for _, e := range l.entries {
			switch {
			case e.kind == kindAddr && e.addr == a,
				e.kind == kindPrefix && e.prefix.Contains(a):
				return e.text, true
			}
		}
		return "", false
	}
	name := strings.ToLower(strings.TrimSuffix(h, "."))
	if name == "" {
		return "", false
	}
	for _, e := range l.entries {
		switch {
		case e.kind == kindName && e.name == name,
			e.kind == kindSuffix && (name == e.name || strings.HasSuffix(name, "."+e.name)):
			return e.text, true
		}
	}
	return "", false
}

// unbracket drops the brackets around an IPv6 literal written as in a URL ([::1]).
func unbracket(s string) string {
	h, _ := hostport.Unbracket(s)
	return h
}

// Entries returns the entries as they were written, in order.
func (l LocalList) Entries() []string {
	out := make([]string, len(l.entries))
	for i, e := range l.entries {
		out[i] = e.text
	}
	return out
}

// String returns the list as a PROXY_LOCAL value ("none" when it is empty).
func (l LocalList) String() string {
	if len(l.entries) == 0 {
		return "none"
	}
	return strings.Join(l.Entries(), " ")
}
