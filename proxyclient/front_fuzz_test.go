package proxyclient

import (
	"bytes"
	"encoding/base64"
	"errors"
	"io"
	"net"
	"syscall"
	"testing"
	"time"

	"github.com/tessel/tessel-proxy/proxyconfig"
)

// Credentials the fuzzed front accepts, so that seeds get past authentication to the request
// parsers.
const fuzzUser, fuzzPass = "u", "p"

var errNoNetwork = errors.New("fuzzing: this dialer connects nowhere")

// FuzzFront feeds bytes to the run front's connection handler, which tells SOCKS5 from HTTP
// by the first byte and parses either, over a net.Pipe. Its Dialer sends everything to the
// tunnel, and the tunnel's connection is refused before any packet (net.Dialer.Control), so
// no input reaches the network. The handler must never panic, must end once the client has
// gone, and can never report a connection made.
func FuzzFront(f *testing.F) {
	auth := "Proxy-Authorization: Basic " + base64.StdEncoding.EncodeToString([]byte(fuzzUser+":"+fuzzPass)) + "\r\n"
	socksAuth := []byte{5, 1, 2, 1, 1, 'u', 1, 'p'}
	for _, seed := range [][]byte{
		append(append([]byte{}, socksAuth...), 5, 1, 0, 3, 11, 'e', 'x', 'a', 'm', 'p', 'l', 'e', '.', 'c', 'o', 'm', 0, 80),
		append(append([]byte{}, socksAuth...), 5, 1, 0, 1, 127, 0, 0, 1, 0x1f, 0x90),
		append(append([]byte{}, socksAuth...), 5, 1, 0, 4, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 22),
		append(append([]byte{}, socksAuth...), 5, 2, 0, 1, 1, 2, 3, 4, 0, 80), // BIND
		append(append([]byte{}, socksAuth...), 5, 1, 0, 9),                    // unknown ATYP
		{5, 1, 0},                    // no username/password offered
		{5, 1, 2, 1, 1, 'x', 1, 'y'}, // wrong credentials
		{5, 0},                       // no methods
		[]byte("CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n" + auth + "\r\n"),
		[]byte("CONNECT [::1]:22 HTTP/1.1\r\n" + auth + "\r\n"),
		[]byte("CONNECT example.com HTTP/1.1\r\n" + auth + "\r\n"),
		[]byte("GET http://example.com/a?b=c HTTP/1.1\r\nHost: example.com\r\n" + auth + "Connection: keep-alive\r\n\r\n"),
		[]byte("POST http://example.com/ HTTP/1.1\r\nHost: example.com\r\n" + auth + "Content-Length: 5\r\n\r\nhello"),
		[]byte("POST http://example.com/ HTTP/1.1\r\nHost: example.com\r\n" + auth + "Transfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n"),
		[]byte("GET / HTTP/1.1\r\nHost: example.com\r\n" + auth + "\r\n"),
		[]byte("GET http://example.com/ HTTP/1.1\r\nHost: example.com\r\n\r\n"), // no credentials
		[]byte("GET http://example.com/ HTTP/1.1\r\nProxy-Authorization: Basic !!!\r\n\r\n"),
		[]byte("\x00\x01\x02"),
	} {
		f.Add(seed)
	}
	front := fuzzFront(f)
	f.Fuzz(func(t *testing.T, in []byte) {
		client, server := net.Pipe()
		if !front.track(server) {
			t.Fatal("front closed")
		}
		done := make(chan struct{})
		go func() { defer close(done); front.handle(server) }()
		var out bytes.Buffer
		read := make(chan struct{})
		go func() { defer close(read); io.Copy(&out, client) }()
		client.SetWriteDeadline(time.Now().Add(10 * time.Second))
		client.Write(in) // ends early when the handler stops reading and closes
		client.Close()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			t.Fatalf("the handler did not end 10 s after its client closed; input %q", in)
		}
		<-read
		if bytes.Contains(out.Bytes(), []byte(" 200 Connection established")) {
			t.Fatalf("CONNECT reported established through a dialer that connects nowhere; input %q", in)
		}
		// Method reply (username/password), auth reply (ok), then a CONNECT reply of success.
		if s := out.Bytes(); bytes.HasPrefix(s, []byte{5, 2, 1, 0, 5, 0}) {
			t.Fatalf("SOCKS reply success through a dialer that connects nowhere; input %q, output %q", in, s)
		}
	})
}

// fuzzFront is a Front whose Dialer routes everything to a tunnel that cannot connect.
func fuzzFront(f *testing.F) *Front {
	cfg := proxyconfig.Config{Host: "127.0.0.1", Port: 9, Idle: time.Minute, Token: "fuzz-token"} // Local: nothing
	d := NewDialer(cfg, nil, WithHandshakeTimeout(time.Second))
	d.direct.Control = func(string, string, syscall.RawConn) error { return errNoNetwork }
	front, err := ListenFront(d, "127.0.0.1:0", nil)
	if err != nil {
		f.Fatal(err)
	}
	front.user, front.pass = fuzzUser, fuzzPass
	f.Cleanup(func() { front.Close(); d.Close() })
	return front
}
