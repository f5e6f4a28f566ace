// Package testtarget gives tests a target on loopback that reads what it is sent.
package testtarget

import (
	"io"
	"net"
	"testing"
	"time"
)

// Reader listens on 127.0.0.1, accepts one connection and reads it to its end, for at most
// timeout. The channel gets the error that ended the read: nil for a clean end of input,
// ECONNRESET for a reset. The listener is closed when the test ends.
func Reader(t testing.TB, timeout time.Duration) (net.Listener, <-chan error) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	got := make(chan error, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			got <- err
			return
		}
		defer c.Close()
		c.SetReadDeadline(time.Now().Add(timeout))
		_, err = io.ReadAll(c)
		got <- err
	}()
	return ln, got
}
