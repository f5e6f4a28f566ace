package proxyserver

import (
	"io"
	"net"
	"testing"
	"time"

	"github.com/tessel/tessel-proxy/wire"
)

// TestTargetResetDoesNotStallTheClientsUpload: a target that answers and closes without
// reading the upload (a web server refusing a large POST) resets the connection. The client,
// still writing, must not be left blocked on a window that never opens again: its writes
// end, and so does its read.
func TestTargetResetDoesNotStallTheClientsUpload(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		buf := make([]byte, 64<<10)
		io.ReadFull(c, buf)
		io.WriteString(c, "HTTP/1.0 413 Content Too Large\r\n\r\n")
		c.Close() // unread bytes: the kernel sends a RST
	}()
	port := ln.Addr().(*net.TCPAddr).AddrPort().Port()
	h := newHarness(t, allowLoopback)
	sess := h.tunnel()
	stream, reply := open(t, sess, wire.KindNet, "127.0.0.1", port, nil)
	if reply.Status != wire.StatusOK {
		t.Fatal(reply.Err())
	}

	wrote := make(chan error, 1)
	go func() {
		chunk := make([]byte, 256<<10)
		var err error
		for i := 0; i < 64 && err == nil; i++ { // 16 MiB, far past any window
			_, err = stream.Write(chunk)
		}
		wrote <- err
	}()
	readAllTimeout(t, stream) // what came back before the reset, then EOF
	select {
	case <-wrote:
	case <-time.After(20 * time.Second):
		t.Fatal("the client's upload is stuck after the target reset the connection")
	}
}
