package transparent

import (
	"context"
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"

	"golang.org/x/net/dns/dnsmessage"
)

// testResolver answers local names from a fixed table: this machine's resolver cannot be
// made to know test names without changing the machine.
func testResolver(t *testing.T, ipv6 bool) (*resolver, *[]string) {
	var asked []string
	hosts := map[string][]netip.Addr{
		"printer.lan": {netip.MustParseAddr("192.168.1.20"), netip.MustParseAddr("fd00::20")},
	}
	r := &resolver{
		names:  newNameTable(100, time.Hour, time.Now),
		locals: newLocalNames(100, time.Hour, time.Now),
		local:  func(h string) bool { return strings.HasSuffix(h, ".lan") || strings.HasPrefix(h, "192.168.") },
		lookup: func(ctx context.Context, network, host string) ([]netip.Addr, error) {
			asked = append(asked, host)
			if a, ok := hosts[host]; ok {
				return a, nil
			}
			return nil, &net.DNSError{Err: "no such host", Name: host, IsNotFound: true}
		},
		lookupAddr: func(ctx context.Context, addr string) ([]string, error) {
			asked = append(asked, addr)
			return []string{"printer.lan."}, nil
		},
		ttl: 10, ipv6: ipv6, wait: time.Second,
	}
	return r, &asked
}

func query(t *testing.T, r *resolver, name string, typ dnsmessage.Type) (dnsmessage.RCode, []string, []uint32) {
	t.Helper()
	b := dnsmessage.NewBuilder(nil, dnsmessage.Header{ID: 42, RecursionDesired: true})
	b.StartQuestions()
	b.Question(dnsmessage.Question{Name: dnsmessage.MustNewName(name), Type: typ, Class: dnsmessage.ClassINET})
	q, err := b.Finish()
	if err != nil {
		t.Fatal(err)
	}
	resp := r.answer(context.Background(), q)
	var m dnsmessage.Message
	if err := m.Unpack(resp); err != nil {
		t.Fatalf("%s %s: unpack the answer: %v", name, typ, err)
	}
	if m.ID != 42 || !m.Response || len(m.Questions) != 1 {
		t.Fatalf("%s %s: header %+v, %d questions", name, typ, m.Header, len(m.Questions))
	}
	var got []string
	var ttls []uint32
	for _, a := range m.Answers {
		ttls = append(ttls, a.Header.TTL)
		switch body := a.Body.(type) {
		case *dnsmessage.AResource:
			got = append(got, netip.AddrFrom4(body.A).String())
		case *dnsmessage.AAAAResource:
			got = append(got, netip.AddrFrom16(body.AAAA).String())
		case *dnsmessage.PTRResource:
			got = append(got, body.PTR.String())
		}
	}
	return m.RCode, got, ttls
}

func TestDNSAnswers(t *testing.T) {
	r, asked := testResolver(t, true)
	tests := []struct {
		name  string
		qname string
		typ   dnsmessage.Type
		rcode dnsmessage.RCode
		want  string
	}{
		{"a tunneled name gets a synthetic IPv4 address", "example.com.", dnsmessage.TypeA, dnsmessage.RCodeSuccess, "240.128.0.1"},
		{"and the IPv6 address of the same index", "Example.COM.", dnsmessage.TypeAAAA, dnsmessage.RCodeSuccess, "fd74:7078:7479:1::1"},
		{"another name gets another address", "github.com.", dnsmessage.TypeA, dnsmessage.RCodeSuccess, "240.128.0.2"},
		{"other types of a tunneled name: no records", "example.com.", dnsmessage.TypeMX, dnsmessage.RCodeSuccess, ""},
		{"a synthetic address names its name back", "1.0.128.240.in-addr.arpa.", dnsmessage.TypePTR, dnsmessage.RCodeSuccess, "example.com."},
		{"an unknown synthetic address has no name", "9.9.128.240.in-addr.arpa.", dnsmessage.TypePTR, dnsmessage.RCodeNameError, ""},
		{"a local name gets its real IPv4 address", "printer.lan.", dnsmessage.TypeA, dnsmessage.RCodeSuccess, "192.168.1.20"},
		{"a local name gets its real IPv6 address", "printer.lan.", dnsmessage.TypeAAAA, dnsmessage.RCodeSuccess, "fd00::20"},
		{"a local name that does not exist", "nothing.lan.", dnsmessage.TypeA, dnsmessage.RCodeNameError, ""},
		{"a local address's name", "20.1.168.192.in-addr.arpa.", dnsmessage.TypePTR, dnsmessage.RCodeSuccess, "printer.lan."},
		{"a tunneled address's name is not looked up", "8.8.8.8.in-addr.arpa.", dnsmessage.TypePTR, dnsmessage.RCodeNameError, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			rcode, got, ttls := query(t, r, tc.qname, tc.typ)
			if rcode != tc.rcode || strings.Join(got, " ") != tc.want {
				t.Errorf("%s %s: %v %q, want %v %q", tc.qname, tc.typ, rcode, got, tc.rcode, tc.want)
			}
			for _, ttl := range ttls {
				if ttl != 10 {
					t.Errorf("TTL %d, want 10", ttl)
				}
			}
		})
	}
	// The local name's addresses lead back to it, for routing by name.
	for _, a := range []string{"192.168.1.20", "fd00::20"} {
		if name, ok := r.locals.name(netip.MustParseAddr(a)); !ok || name != "printer.lan" {
			t.Errorf("address %s of printer.lan leads back to %q, %v", a, name, ok)
		}
	}
	// Only local names and local addresses went to this machine's resolver.
	if strings.Join(*asked, " ") != "printer.lan printer.lan nothing.lan 192.168.1.20" {
		t.Errorf("the machine's resolver was asked for %q", *asked)
	}
}

func TestDNSWithoutIPv6(t *testing.T) {
	r, _ := testResolver(t, false)
	for _, name := range []string{"example.com.", "printer.lan."} {
		rcode, got, _ := query(t, r, name, dnsmessage.TypeAAAA)
		if rcode != dnsmessage.RCodeSuccess || len(got) != 0 {
			t.Errorf("AAAA %s in a namespace without IPv6: %v %q, want no records", name, rcode, got)
		}
	}
}

func TestDNSIgnoresGarbage(t *testing.T) {
	r, _ := testResolver(t, true)
	if resp := r.answer(context.Background(), []byte{1, 2, 3}); resp != nil {
		t.Errorf("answered three bytes of garbage with %x", resp)
	}
}

func TestParseReverse(t *testing.T) {
	for in, want := range map[string]string{
		"4.3.2.1.in-addr.arpa": "1.2.3.4",
		"1.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.1.0.0.0.9.7.4.7.8.7.0.7.4.7.d.f.ip6.arpa": "fd74:7078:7479:1::1",
	} {
		a, ok := parseReverse(in)
		if !ok || a.String() != want {
			t.Errorf("parseReverse(%q) = %v, %v; want %s", in, a, ok, want)
		}
	}
	for _, in := range []string{"3.2.1.in-addr.arpa", "x.3.2.1.in-addr.arpa", "example.com", "1.ip6.arpa"} {
		if a, ok := parseReverse(in); ok {
			t.Errorf("parseReverse(%q) = %v, want not an address", in, a)
		}
	}
}
