package proxyclient

import (
	"context"
	"io"
	"testing"
	"time"

	"github.com/tessel/tessel-proxy/internal/relay"
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
	elapsed := map[string]time.Duration{}
	b.SetBytes(2 * size)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		for _, name := range []string{"tls", "wss"} {
			start := time.Now()
			c, err := dialers[name].DialEarly(context.Background(), "tcp", target.ln.Addr().String(), []byte{'S'})
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
	b.ReportMetric(mbps("tls"), "tls-MB/s")
	b.ReportMetric(mbps("wss"), "wss-MB/s")
	b.ReportMetric(mbps("wss")/mbps("tls"), "wss/tls")
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
