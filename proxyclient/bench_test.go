package proxyclient

import (
	"bufio"
	"context"
	"io"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/tessel/tessel-proxy/internal/relay"
)

// benchTarget serves two kinds of connection, picked by the first byte the client sends:
// 'S' streams size bytes and closes (throughput); 'R' reads a request line, answers with
// a short response and closes (a new connection per request, as a server that closes
// each connection makes a client do).
type benchTarget struct {
	ln   net.Listener
	size int64
	wg   sync.WaitGroup
}

func newBenchTarget(b *testing.B, size int64) *benchTarget {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	t := &benchTarget{ln: ln, size: size}
	t.wg.Add(1)
	go func() {
		defer t.wg.Done()
		chunk := make([]byte, relay.LargeBuffer)
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			t.wg.Add(1)
			go func() {
				defer t.wg.Done()
				defer c.Close()
				br := bufio.NewReader(c)
				kind, err := br.ReadByte()
				if err != nil {
					return
				}
				if kind == 'S' {
					for left := t.size; left > 0; {
						n := min(left, int64(len(chunk)))
						if _, err := c.Write(chunk[:n]); err != nil {
							return
						}
						left -= n
					}
					return
				}
				if _, err := br.ReadString('\n'); err != nil {
					return
				}
				io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
			}()
		}
	}()
	b.Cleanup(func() { ln.Close(); t.wg.Wait() })
	return t
}

type benchDial func(ctx context.Context, early []byte) (net.Conn, error)

// BenchmarkThroughput moves 64 MiB per operation over one connection, directly and
// through the tunnel, and reports both rates and their ratio from the same run.
func BenchmarkThroughput(b *testing.B) {
	const size = 64 << 20
	target := newBenchTarget(b, size)
	srv := newTestServer(b, testToken, quietLogs)
	d := newTestDialer(b, srv.config(), testToken)
	var direct net.Dialer
	dials := map[string]benchDial{
		"direct": func(ctx context.Context, early []byte) (net.Conn, error) {
			c, err := direct.DialContext(ctx, "tcp", target.ln.Addr().String())
			if err == nil {
				_, err = c.Write(early)
			}
			return c, err
		},
		"tunnel": func(ctx context.Context, early []byte) (net.Conn, error) {
			return d.DialEarly(ctx, "tcp", target.ln.Addr().String(), early)
		},
	}
	compareDownloads(b, size, dials, "direct", "tunnel")
}

// compareDownloads times size-byte downloads through dials[base] and dials[other], taking
// turns in each operation so that both see the same machine, and reports both rates and
// other/base.
func compareDownloads(b *testing.B, size int64, dials map[string]benchDial, base, other string) {
	elapsed := map[string]time.Duration{}
	b.SetBytes(2 * size)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		for _, name := range []string{base, other} {
			start := time.Now()
			c, err := dials[name](context.Background(), []byte{'S'})
			if err != nil {
				b.Fatal(err)
			}
			n, err := relay.Copy(io.Discard, c, nil)
			c.Close()
			if err != nil || n != size {
				b.Fatalf("%s: read %d bytes, %v", name, n, err)
			}
			elapsed[name] += time.Since(start)
		}
	}
	mbps := func(name string) float64 { return float64(size) * float64(b.N) / elapsed[name].Seconds() / 1e6 }
	b.ReportMetric(mbps(base), base+"-MB/s")
	b.ReportMetric(mbps(other), other+"-MB/s")
	b.ReportMetric(mbps(other)/mbps(base), other+"/"+base)
}

// BenchmarkNewConnection opens a connection, sends a request line, reads the short answer
// and closes, directly and through the (already open) tunnel.
func BenchmarkNewConnection(b *testing.B) {
	target := newBenchTarget(b, 0)
	srv := newTestServer(b, testToken, quietLogs)
	d := newTestDialer(b, srv.config(), testToken)
	var direct net.Dialer
	addr := target.ln.Addr().String()
	request := []byte("RGET / HTTP/1.1\n")
	if err := d.Connect(context.Background()); err != nil {
		b.Fatal(err)
	}
	one := func(dial benchDial) {
		c, err := dial(context.Background(), request)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := io.ReadAll(c); err != nil {
			b.Fatal(err)
		}
		c.Close()
	}
	directDial := func(ctx context.Context, early []byte) (net.Conn, error) {
		c, err := direct.DialContext(ctx, "tcp", addr)
		if err == nil {
			_, err = c.Write(early)
		}
		return c, err
	}
	tunnelDial := func(ctx context.Context, early []byte) (net.Conn, error) {
		return d.DialEarly(ctx, "tcp", addr, early)
	}
	var tDirect, tTunnel time.Duration
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		start := time.Now()
		one(directDial)
		mid := time.Now()
		one(tunnelDial)
		tDirect += mid.Sub(start)
		tTunnel += time.Since(mid)
	}
	b.ReportMetric(float64(tDirect.Microseconds())/float64(b.N), "direct-µs/conn")
	b.ReportMetric(float64(tTunnel.Microseconds())/float64(b.N), "tunnel-µs/conn")
	b.ReportMetric(float64(tTunnel)/float64(tDirect), "tunnel/direct")
}
