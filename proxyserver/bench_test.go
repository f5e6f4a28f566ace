package proxyserver

import (
	"crypto/tls"
	"io"
	"net"
	"testing"

	"github.com/tessel/tessel-proxy/wire"
)

// sourceServer writes size bytes to each connection and closes it.
func sourceServer(b *testing.B, size int) (string, uint16) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	done := make(chan struct{})
	b.Cleanup(func() { ln.Close(); <-done })
	go func() {
		defer close(done)
		chunk := make([]byte, 256<<10)
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				for left := size; left > 0; {
					n, err := c.Write(chunk[:min(left, len(chunk))])
					if err != nil {
						return
					}
					left -= n
				}
			}()
		}
	}()
	ap := ln.Addr().(*net.TCPAddr).AddrPort()
	return ap.Addr().String(), ap.Port()
}

// BenchmarkDownload measures target->client throughput of one stream through a real TLS
// tunnel on loopback. Run: go test -run XXX -bench Download -benchtime 20x ./proxyserver
func BenchmarkDownload(b *testing.B) {
	const size = 256 << 20
	host, port := sourceServer(b, size)
	h := newHarness(b, allowLoopback)
	sess := h.tunnel()
	buf := make([]byte, 256<<10)
	b.SetBytes(size)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		stream, err := sess.OpenStream()
		if err != nil {
			b.Fatal(err)
		}
		if err := wire.WriteStreamRequest(stream, wire.StreamRequest{Version: wire.Version, Kind: wire.KindNet, Host: host, Port: port}); err != nil {
			b.Fatal(err)
		}
		if r, err := wire.ReadReply(stream); err != nil || r.Status != wire.StatusOK {
			b.Fatal(r.Err(), err)
		}
		n, err := io.CopyBuffer(io.Discard, struct{ io.Reader }{stream}, buf)
		if err != nil || n != size {
			b.Fatalf("read %d, %v", n, err)
		}
		stream.Close()
	}
}

// BenchmarkStreamOpen measures a new stream to an echo target: request, reply, one byte
// there and back, close.
func BenchmarkStreamOpen(b *testing.B) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() { io.Copy(c, c); c.Close() }()
		}
	}()
	port := ln.Addr().(*net.TCPAddr).AddrPort().Port()
	h := newHarness(b, allowLoopback)
	sess := h.tunnel()
	one := make([]byte, 1)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		stream, err := sess.OpenStream()
		if err != nil {
			b.Fatal(err)
		}
		req, _ := wire.AppendStreamRequest(nil, wire.StreamRequest{Version: wire.Version, Kind: wire.KindNet, Host: "127.0.0.1", Port: port})
		if _, err := stream.Write(append(req, 'x')); err != nil {
			b.Fatal(err)
		}
		if r, err := wire.ReadReply(stream); err != nil || r.Status != wire.StatusOK {
			b.Fatal(r.Err(), err)
		}
		if _, err := io.ReadFull(stream, one); err != nil {
			b.Fatal(err)
		}
		stream.Close()
	}
}

// BenchmarkDownloadDirectTLS is the baseline for BenchmarkDownload: the same bytes over one
// plain TLS connection on loopback, no tunnel. Compare the two from the same run.
func BenchmarkDownloadDirectTLS(b *testing.B) {
	const size = 256 << 20
	cert, roots, _ := testCert(b)
	ln, err := tls.Listen("tcp", "127.0.0.1:0", &tls.Config{Certificates: []tls.Certificate{cert}})
	if err != nil {
		b.Fatal(err)
	}
	done := make(chan struct{})
	defer func() { ln.Close(); <-done }()
	go func() {
		defer close(done)
		chunk := make([]byte, 256<<10)
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			for left := size; left > 0; left -= len(chunk) {
				if _, err := c.Write(chunk[:min(left, len(chunk))]); err != nil {
					break
				}
			}
			c.Close()
		}
	}()
	buf := make([]byte, 256<<10)
	b.SetBytes(size)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		c, err := tls.Dial("tcp", ln.Addr().String(), &tls.Config{RootCAs: roots, ServerName: "127.0.0.1"})
		if err != nil {
			b.Fatal(err)
		}
		n, err := io.CopyBuffer(io.Discard, struct{ io.Reader }{c}, buf)
		if err != nil || n != size {
			b.Fatalf("read %d, %v", n, err)
		}
		c.Close()
	}
}

// sinkServer reads each connection to its end and discards it.
func sinkServer(b *testing.B) (string, uint16) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	done := make(chan struct{})
	b.Cleanup(func() { ln.Close(); <-done })
	go func() {
		defer close(done)
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() { io.Copy(io.Discard, c); c.Close() }()
		}
	}()
	ap := ln.Addr().(*net.TCPAddr).AddrPort()
	return ap.Addr().String(), ap.Port()
}

// BenchmarkUpload measures client->target throughput of one stream, which the server's
// stream window (Config.StreamWindow) governs on long paths; on loopback it makes no
// measurable difference. Run: go test -run XXX -bench Upload ./proxyserver
func BenchmarkUpload(b *testing.B) {
	const size = 256 << 20
	host, port := sinkServer(b)
	h := newHarness(b, allowLoopback)
	sess := h.tunnel()
	chunk := make([]byte, 256<<10)
	b.SetBytes(size)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		stream, err := sess.OpenStream()
		if err != nil {
			b.Fatal(err)
		}
		if err := wire.WriteStreamRequest(stream, wire.StreamRequest{Version: wire.Version, Kind: wire.KindNet, Host: host, Port: port}); err != nil {
			b.Fatal(err)
		}
		if r, err := wire.ReadReply(stream); err != nil || r.Status != wire.StatusOK {
			b.Fatal(r.Err(), err)
		}
		for left := size; left > 0; left -= len(chunk) {
			if _, err := stream.Write(chunk[:min(left, len(chunk))]); err != nil {
				b.Fatal(err)
			}
		}
		stream.Close()
		if _, err := io.Copy(io.Discard, stream); err != nil {
			b.Fatal(err)
		}
	}
}
