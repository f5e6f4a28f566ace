package proxyserver

import (
	"context"
	"crypto/tls"
	"encoding/binary"
	"errors"
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/tessel/tessel-proxy/wire"
)

// servfailDNS answers every query on a loopback UDP port with SERVFAIL, as a broken
// upstream resolver does. It returns the address.
func servfailDNS(t *testing.T) string {
	t.Helper()
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	t.Cleanup(func() { pc.Close(); <-done })
	go func() {
		defer close(done)
		buf := make([]byte, 1500)
		for {
			n, from, err := pc.ReadFrom(buf)
			if err != nil {
				return
			}
			q := buf[:n]
			if len(q) < 12 {
				continue
			}
			// The header and question of the query, flagged as a response with RCODE 2
			// (SERVFAIL), no records.
			end := 12
			for end < len(q) && q[end] != 0 {
				end += int(q[end]) + 1
			}
			end += 5 // the root label, QTYPE, QCLASS
			if end > len(q) {
				continue
			}
			resp := append([]byte(nil), q[:end]...)
			binary.BigEndian.PutUint16(resp[2:], 0x8182) // QR, RD, RA, SERVFAIL
			binary.BigEndian.PutUint16(resp[6:], 0)      // ANCOUNT
			binary.BigEndian.PutUint16(resp[8:], 0)      // NSCOUNT
			binary.BigEndian.PutUint16(resp[10:], 0)     // ARCOUNT
			_, _ = pc.WriteTo(resp, from)
		}
	}()
	return pc.LocalAddr().String()
}

// TestRepliesDoNotLeakServerInternals: a DNS failure used to tell the client the address of
// the server's resolver ("lookup example.com on 127.0.0.53:53: server misbehaving"), and a
// name refused by the policy the address it resolved to on the server. The client now gets
// a generic message; the server's log keeps the detail.
func TestRepliesDoNotLeakServerInternals(t *testing.T) {
	dns := servfailDNS(t)
	// The real Go resolver, sent to the broken DNS server above.
	resolver := &net.Resolver{PreferGo: true, Dial: func(ctx context.Context, network, _ string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, "udp", dns)
	}}
	internal := fakeResolver{"db.internal.example": {netip.MustParseAddr("10.20.30.40")}}

	tests := []struct {
		name     string
		resolver Resolver
		host     string
		status   wire.Status
		want     string // the reply's message
		secret   string // in the log, never in the reply
	}{
		// The Go resolver names the nameserver of resolv.conf in its error, whatever it dialed.
		{"resolver failure", resolver, "example.com", wire.StatusDNSFailure, "DNS lookup of example.com failed", "server misbehaving"},
		{"name resolving to a private address", internal, "db.internal.example", wire.StatusDenied,
			"db.internal.example: refused by the server's destination policy (private-use (RFC 1918))", "10.20.30.40"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dialer := &recordingDialer{}
			h := newHarness(t, func(c *Config) { c.Resolver = tt.resolver; c.Dialer = dialer })
			_, reply := open(t, h.tunnel(), wire.KindNet, tt.host, 80, nil)
			if reply.Status != tt.status || reply.Message != tt.want {
				t.Errorf("reply %v %q, want %v %q", reply.Status, reply.Message, tt.status, tt.want)
			}
			if strings.Contains(reply.Message, tt.secret) {
				t.Errorf("the reply tells the client %s: %q", tt.secret, reply.Message)
			}
			waitForLog(t, h, tt.secret)
		})
	}
}

// waitForLog waits until the server's log mentions s (the refusal is logged as the reply is
// sent, so the reply can arrive first).
func waitForLog(t *testing.T, h *harness, s string) {
	t.Helper()
	for i := 0; !strings.Contains(h.logs.String(), s); i++ {
		if i == 500 {
			t.Fatalf("the server's log does not mention %s:\n%s", s, h.logs)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestOwnAddressesAreRefused: an address of one of the server's own interfaces is refused
// even when the registries call it globally reachable, unless --allow opens it. The list of
// interfaces is a fake here, because a globally reachable address on a real interface would
// be a public address, which tests may not assign; TestOwnAddressesReadsInterfaces checks
// the real list.
func TestOwnAddressesAreRefused(t *testing.T) {
	public := netip.MustParseAddr("192.0.0.9") // globally reachable per the IPv4 registry
	list := func() ([]net.Addr, error) {
		return []net.Addr{&net.IPNet{IP: net.IP(public.AsSlice()), Mask: net.CIDRMask(32, 32)}}, nil
	}
	for _, tt := range []struct {
		policy *Policy
		denied bool
	}{
		{nil, true},
		{&Policy{Allow: mustPrefixes("192.0.0.0/24")}, false},
	} {
		cert, _, _ := testCert(t)
		auth, _ := NewStaticAuthenticator(testToken)
		s, err := New(Config{TLS: &tls.Config{Certificates: []tls.Certificate{cert}}, Authenticator: auth, Policy: tt.policy})
		if err != nil {
			t.Fatal(err)
		}
		s.own = newOwnAddrs(list, s.log)
		for _, addr := range []netip.Addr{public, netip.AddrFrom16(public.As16())} {
			err := s.checkTarget(addr)
			if got := errors.Is(err, wire.ErrDenied); got != tt.denied {
				t.Errorf("policy %+v, own address %v: %v, want denied %v", tt.policy, addr, err, tt.denied)
			}
		}
		if err := s.checkTarget(netip.MustParseAddr("192.0.0.10")); err != nil {
			t.Errorf("policy %+v: an address that is not the server's: %v", tt.policy, err)
		}
		s.Close()
	}
}
