package proxyclient

import (
	"context"
	"io"
	"net"
	"testing"
	"time"
)

// BenchmarkTransportThroughput moves 64 MiB per operation through the real server over
// each transport, plain TLS and WebSocket inside TLS, alternating in the same run, and
// reports both rates and their ratio.
func BenchmarkTransportThroughput(b *testing.B) {
	const size = 64 << 20
	target := newBenchTarget(b, size)
	srv := newTestServer(b, testToken, quietLogs)
	dialers := map[string]*Dialer{
		"tls": newTestDialer(b, over(srv, ""), testToken),
		"wss": newTestDialer(b, over(srv, "/tunnel"), testToken),
	}
	for _, d := range dialers {
		if err := d.Connect(context.Background()); err != nil {
			b.Fatal(err)
		}
	}
	addr := target.ln.Addr().String()
	dials := map[string]benchDial{}
	for name, d := range dialers {
		dials[name] = func(ctx context.Context, early []byte) (net.Conn, error) {
			return d.DialEarly(ctx, "tcp", addr, early)
		}
	}
	compareDownloads(b, size, dials, "tls", "wss")
}

// BenchmarkTransportNewConnection opens a connection, sends a request line, reads the short
// answer and closes, over an open tunnel on each transport.
func BenchmarkTransportNewConnection(b *testing.B) {
	target := newBenchTarget(b, 0)
	srv := newTestServer(b, testToken, quietLogs)
	addr := target.ln.Addr().String()
	request := []byte("RGET / HTTP/1.1\n")
	dialers := map[string]*Dialer{
		"tls": newTestDialer(b, over(srv, ""), testToken),
		"wss": newTestDialer(b, over(srv, "/tunnel"), testToken),
	}
	for _, d := range dialers {
		if err := d.Connect(context.Background()); err != nil {
			b.Fatal(err)
		}
	}
	elapsed := map[string]time.Duration{}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		for _, name := range []string{"tls", "wss"} {
			start := time.Now()
			c, err := dialers[name].DialEarly(context.Background(), "tcp", addr, request)
			if err != nil {
				b.Fatal(err)
			}
			if _, err := io.ReadAll(c); err != nil {
				b.Fatal(err)
			}
			c.Close()
			elapsed[name] += time.Since(start)
		}
	}
	b.ReportMetric(float64(elapsed["tls"].Microseconds())/float64(b.N), "tls-µs/conn")
	b.ReportMetric(float64(elapsed["wss"].Microseconds())/float64(b.N), "wss-µs/conn")
	b.ReportMetric(float64(elapsed["wss"])/float64(elapsed["tls"]), "wss/tls")
}
