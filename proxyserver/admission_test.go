package proxyserver

import (
	"crypto/tls"
	"io"
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/hashicorp/yamux"

	"github.com/tessel/tessel-proxy/wire"
)

// silentConns opens n TCP connections to addr from 127.0.0.1 that never send a byte, and
// returns them.
func silentConns(t *testing.T, addr string, n int) []net.Conn {
	t.Helper()
	conns := make([]net.Conn, 0, n)
	t.Cleanup(func() {
		for _, c := range conns {
			c.Close()
		}
	})
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1)}}
	for range n {
		c, err := d.Dial("tcp", addr)
		if err != nil {
			t.Fatalf("silent connection %d: %v", len(conns), err)
		}
		conns = append(conns, c)
	}
	return conns
}

// tunnelFrom authenticates from the local address from and opens one stream to the echo
// server at host:port through it, and reports how that went.
func (h *harness) tunnelFrom(from string, host string, port uint16) error {
	d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(from)}, Timeout: 10 * time.Second}
	conn, err := tls.DialWithDialer(d, "tcp", h.addr, &tls.Config{RootCAs: h.roots, ServerName: "127.0.0.1", MinVersion: tls.VersionTLS12})
	if err != nil {
		return err
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(10 * time.Second))
	if err := wire.WriteHello(conn, wire.Hello{Version: wire.Version, Token: testToken}); err != nil {
		return err
	}
	reply, err := wire.ReadReply(conn)
	if err != nil {
		return err
	}
	if err := reply.Err(); err != nil {
		return err
	}
	_ = conn.SetDeadline(time.Time{})
	sess, err := yamux.Client(conn, wire.MuxConfig())
	if err != nil {
		return err
	}
	defer sess.Close()
	stream, err := sess.OpenStream()
	if err != nil {
		return err
	}
	defer stream.Close()
	_ = stream.SetDeadline(time.Now().Add(10 * time.Second))
	req, _ := wire.AppendStreamRequest(nil, wire.StreamRequest{Version: wire.Version, Kind: wire.KindNet, Host: host, Port: port})
	if _, err := stream.Write(append(req, "ping"...)); err != nil {
		return err
	}
	if reply, err := wire.ReadReply(stream); err != nil {
		return err
	} else if err := reply.Err(); err != nil {
		return err
	}
	buf := make([]byte, 4)
	if _, err := io.ReadFull(stream, buf); err != nil {
		return err
	}
	return nil
}

// TestSilentFloodFromOneHostLeavesOthersIn: 1,100 connections from one host that never
// send a byte, more than the default --max-handshakes, must not lock out a client from
// another address, while they are held open.
func TestSilentFloodFromOneHostLeavesOthersIn(t *testing.T) {
	host, port := echoServer(t)
	h := newHarness(t, allowLoopback)
	start := time.Now()
	conns := silentConns(t, h.addr, 1100)
	// Give the server time to accept them all: the flood is in place.
	time.Sleep(300 * time.Millisecond)
	if err := h.tunnelFrom("127.0.0.2", host, port); err != nil {
		t.Fatalf("with %d silent connections from 127.0.0.1 open, a client from 127.0.0.2: %v", len(conns), err)
	}
	t.Logf("a client from 127.0.0.2 tunneled %v after 1,100 silent connections from 127.0.0.1 began", time.Since(start).Round(time.Millisecond))
}

// TestSilentConnectionsAreDroppedBeforeTheHandshakeTimeout: a connection that sends nothing
// is closed after FirstByteTimeout, long before HandshakeTimeout.
func TestSilentConnectionsAreDroppedBeforeTheHandshakeTimeout(t *testing.T) {
	h := newHarness(t, func(c *Config) {
		c.FirstByteTimeout = 200 * time.Millisecond
		c.HandshakeTimeout = time.Minute
	})
	conn := silentConns(t, h.addr, 1)[0]
	start := time.Now()
	_ = conn.SetReadDeadline(time.Now().Add(20 * time.Second))
	if _, err := conn.Read(make([]byte, 1)); err == nil {
		t.Fatal("the server sent something to a client that sent nothing")
	}
	if took := time.Since(start); took > 20*time.Second {
		t.Fatalf("a silent connection was left open %v", took)
	}
	// A slow but live handshake is not cut by the first-byte deadline.
	slow, err := net.Dial("tcp", h.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer slow.Close()
	time.Sleep(100 * time.Millisecond)
	tc := tls.Client(slow, &tls.Config{RootCAs: h.roots, ServerName: "127.0.0.1", MinVersion: tls.VersionTLS12})
	if err := tc.Handshake(); err != nil {
		t.Fatal(err)
	}
	time.Sleep(300 * time.Millisecond) // past FirstByteTimeout, within HandshakeTimeout
	if err := wire.WriteHello(tc, wire.Hello{Version: wire.Version, Token: testToken}); err != nil {
		t.Fatal(err)
	}
	if reply, err := wire.ReadReply(tc); err != nil || reply.Status != wire.StatusOK {
		t.Fatalf("a handshake that began in time and took longer than FirstByteTimeout: %v %v", reply.Err(), err)
	}
}

func TestAdmission(t *testing.T) {
	a4, b4 := netip.MustParsePrefix("192.0.2.1/32"), netip.MustParsePrefix("192.0.2.2/32")
	newAd := func(max, perSource, start, rate, chance int) *admission {
		return &admission{max: max, perSource: perSource, dropStart: start, dropRate: rate,
			chance: func() int { return chance }, bySource: make(map[netip.Prefix]int)}
	}
	t.Run("per source", func(t *testing.T) {
		a := newAd(100, 2, 100, 30, 99)
		for i, want := range []string{"", "", resultSourceLimit} {
			if ok, got := a.admit(a4); got != want || ok != (want == "") {
				t.Fatalf("connection %d from one source: %q, want %q", i, got, want)
			}
		}
		if ok, _ := a.admit(b4); !ok {
			t.Fatal("another source refused")
		}
		a.done(a4)
		if ok, _ := a.admit(a4); !ok {
			t.Fatal("a source refused after one of its handshakes ended")
		}
	})
	t.Run("random early drop", func(t *testing.T) {
		// start 4, rate 30, full 8: with n in progress the chance of a drop is
		// 30 + 70*(n-4)/4 percent; chance() returns 50 here.
		a := newAd(8, 100, 4, 30, 50)
		var results []string
		for i := range 9 {
			_, r := a.admit(netip.PrefixFrom(netip.AddrFrom4([4]byte{10, 0, 0, byte(i)}), 32))
			results = append(results, r)
		}
		// n=0..3 below start; n=4: 30 (50 not below, admitted); n=5: 47 (admitted);
		// n=6: 65 (dropped), and so on until full.
		want := []string{"", "", "", "", "", "", resultEarlyDrop, resultEarlyDrop, resultEarlyDrop}
		for i := range want {
			if results[i] != want[i] {
				t.Fatalf("results %q, want %q", results, want)
			}
		}
		b := newAd(8, 100, 8, 30, 0)
		for i := range 9 {
			_, r := b.admit(netip.PrefixFrom(netip.AddrFrom4([4]byte{10, 0, 0, byte(i)}), 32))
			if want := map[bool]string{true: resultHandshakeLimit, false: ""}[i >= 8]; r != want {
				t.Fatalf("start = full: connection %d: %q, want %q (no random drops, only the limit)", i, r, want)
			}
		}
	})
}
