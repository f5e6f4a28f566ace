package transparent

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"strings"
	"time"

	"golang.org/x/net/dns/dnsmessage"
)

// maxLocalAnswers bounds the addresses of one answer for a local name, so that a UDP answer
// stays within 512 bytes.
const maxLocalAnswers = 8

// resolver answers the namespace's DNS queries: names that local accepts from the machine's
// own resolver, every other name with its synthetic address from names.
type resolver struct {
	names      *nameTable
	locals     *localNames // addresses answered for local names, and their names
	local      func(host string) bool
	lookup     func(ctx context.Context, network, host string) ([]netip.Addr, error)
	lookupAddr func(ctx context.Context, addr string) ([]string, error)
	ttl        uint32 // seconds
	ipv6       bool   // the namespace has IPv6: answer AAAA queries for tunneled names
	wait       time.Duration
}

// answer returns the response to query, or nil when query is not a DNS query worth an
// answer (a response, or not even a header).
func (r *resolver) answer(ctx context.Context, query []byte) []byte {
	var p dnsmessage.Parser
	h, err := p.Start(query)
	if err != nil || h.Response {
		return nil
	}
	q, qerr := p.Question()
	rh := dnsmessage.Header{
		ID: h.ID, Response: true, OpCode: h.OpCode,
		RecursionDesired: h.RecursionDesired, RecursionAvailable: true,
	}
	switch {
	case h.OpCode != 0:
		rh.RCode = dnsmessage.RCodeNotImplemented
		return build(rh, nil, nil)
	case qerr != nil:
		rh.RCode = dnsmessage.RCodeFormatError
		return build(rh, nil, nil)
	}
	var answers []dnsmessage.Resource
	rh.RCode, answers = r.resolve(ctx, q)
	return build(rh, &q, answers)
}

func (r *resolver) resolve(ctx context.Context, q dnsmessage.Question) (dnsmessage.RCode, []dnsmessage.Resource) {
	if q.Class != dnsmessage.ClassINET {
		return dnsmessage.RCodeNotImplemented, nil
	}
	name := strings.ToLower(strings.TrimSuffix(q.Name.String(), "."))
	if q.Type == dnsmessage.TypePTR {
		return r.reverse(ctx, q, name)
	}
	if name == "" {
		return dnsmessage.RCodeNameError, nil
	}
	if r.local(name) {
		return r.resolveLocal(ctx, q, name)
	}
	rh := r.header(q)
	switch q.Type {
	case dnsmessage.TypeA:
		a4, _ := syntheticAddrs(r.names.assign(name))
		return dnsmessage.RCodeSuccess, []dnsmessage.Resource{{Header: rh, Body: &dnsmessage.AResource{A: a4.As4()}}}
	case dnsmessage.TypeAAAA:
		if !r.ipv6 {
			return dnsmessage.RCodeSuccess, nil
		}
		_, a6 := syntheticAddrs(r.names.assign(name))
		return dnsmessage.RCodeSuccess, []dnsmessage.Resource{{Header: rh, Body: &dnsmessage.AAAAResource{AAAA: a6.As16()}}}
	}
	// The name exists as far as the program can tell; it has no records of this type here.
	return dnsmessage.RCodeSuccess, nil
}

// resolveLocal answers an A or AAAA query from the machine's resolver.
func (r *resolver) resolveLocal(ctx context.Context, q dnsmessage.Question, name string) (dnsmessage.RCode, []dnsmessage.Resource) {
	if q.Type != dnsmessage.TypeA && q.Type != dnsmessage.TypeAAAA {
		return dnsmessage.RCodeSuccess, nil
	}
	ctx, cancel := context.WithTimeout(ctx, r.wait)
	defer cancel()
	addrs, err := r.lookup(ctx, "ip", name)
	var dnsErr *net.DNSError
	switch {
	case errors.As(err, &dnsErr) && dnsErr.IsNotFound:
		return dnsmessage.RCodeNameError, nil
	case err != nil:
		return dnsmessage.RCodeServerFailure, nil
	}
	var answers []dnsmessage.Resource
	for _, a := range addrs {
		a = a.Unmap()
		if len(answers) == maxLocalAnswers {
			break
		}
		switch {
		case q.Type == dnsmessage.TypeA && a.Is4():
			answers = append(answers, dnsmessage.Resource{Header: r.header(q), Body: &dnsmessage.AResource{A: a.As4()}})
		case q.Type == dnsmessage.TypeAAAA && a.Is6() && r.ipv6:
			answers = append(answers, dnsmessage.Resource{Header: r.header(q), Body: &dnsmessage.AAAAResource{AAAA: a.As16()}})
		default:
			continue
		}
		r.locals.add(a, name)
	}
	return dnsmessage.RCodeSuccess, answers
}

// reverse answers a PTR query: a synthetic address gives back its name, an address that
// local accepts is looked up on the machine, any other gets no name (looking it up would
// send a query out).
func (r *resolver) reverse(ctx context.Context, q dnsmessage.Question, name string) (dnsmessage.RCode, []dnsmessage.Resource) {
	a, ok := parseReverse(name)
	if !ok {
		return dnsmessage.RCodeNameError, nil
	}
	var target string
	ok = false
	if i, synthetic := syntheticIndex(a); synthetic {
		target, ok = r.names.name(i)
	} else if r.local(a.String()) {
		ctx, cancel := context.WithTimeout(ctx, r.wait)
		defer cancel()
		names, err := r.lookupAddr(ctx, a.String())
		ok = err == nil && len(names) > 0
		if ok {
			target = names[0]
		}
	}
	if !ok {
		return dnsmessage.RCodeNameError, nil
	}
	n, err := dnsmessage.NewName(strings.TrimSuffix(target, ".") + ".")
	if err != nil {
		return dnsmessage.RCodeNameError, nil
	}
	return dnsmessage.RCodeSuccess, []dnsmessage.Resource{{Header: r.header(q), Body: &dnsmessage.PTRResource{PTR: n}}}
}

func (r *resolver) header(q dnsmessage.Question) dnsmessage.ResourceHeader {
	return dnsmessage.ResourceHeader{Name: q.Name, Type: q.Type, Class: q.Class, TTL: r.ttl}
}

// parseReverse reads the address out of a reverse-lookup name (4.3.2.1.in-addr.arpa, or the
// 32 nibbles of an ip6.arpa name).
func parseReverse(name string) (netip.Addr, bool) {
	if rest, ok := strings.CutSuffix(name, ".in-addr.arpa"); ok {
		labels := strings.Split(rest, ".")
		if len(labels) != 4 {
			return netip.Addr{}, false
		}
		for i, j := 0, 3; i < j; i, j = i+1, j-1 {
			labels[i], labels[j] = labels[j], labels[i]
		}
		a, err := netip.ParseAddr(strings.Join(labels, "."))
		return a, err == nil && a.Is4()
	}
	if rest, ok := strings.CutSuffix(name, ".ip6.arpa"); ok {
		nibbles := strings.Split(rest, ".")
		if len(nibbles) != 32 {
			return netip.Addr{}, false
		}
		var b [16]byte
		for i, n := range nibbles {
			if len(n) != 1 {
				return netip.Addr{}, false
			}
			v := strings.IndexByte("0123456789abcdef", n[0])
			if v < 0 {
				return netip.Addr{}, false
			}
			pos := 31 - i
			if pos%2 == 0 {
				b[pos/2] |= byte(v) << 4
			} else {
				b[pos/2] |= byte(v)
			}
		}
		return netip.AddrFrom16(b), true
	}
	return netip.Addr{}, false
}

// build writes a response; q is the question to echo, nil when there was none to read.
func build(h dnsmessage.Header, q *dnsmessage.Question, answers []dnsmessage.Resource) []byte {
	b := dnsmessage.NewBuilder(make([]byte, 0, 512), h)
	b.EnableCompression()
	if q != nil {
		b.StartQuestions()
		b.Question(*q)
	}
	b.StartAnswers()
	for _, a := range answers {
		var err error
		switch body := a.Body.(type) {
		case *dnsmessage.AResource:
			err = b.AResource(a.Header, *body)
		case *dnsmessage.AAAAResource:
			err = b.AAAAResource(a.Header, *body)
		case *dnsmessage.PTRResource:
			err = b.PTRResource(a.Header, *body)
		}
		if err != nil {
			break
		}
	}
	msg, err := b.Finish()
	if err != nil {
		return nil
	}
	return msg
}
