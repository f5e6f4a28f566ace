package relay

import (
	"bytes"
	"errors"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// tcpPair returns the two ends of a loopback TCP connection.
func tcpPair(t *testing.T) (near, far *net.TCPConn) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	accepted := make(chan net.Conn, 1)
	go func() {
		c, _ := ln.Accept()
		accepted <- c
	}()
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	s := <-accepted
	if s == nil {
		t.Fatal("accept failed")
	}
	t.Cleanup(func() { c.Close(); s.Close() })
	for _, x := range []net.Conn{c, s} {
		x.SetDeadline(time.Now().Add(20 * time.Second)) // a hang fails, it does not time out the suite
	}
	return c.(*net.TCPConn), s.(*net.TCPConn)
}

// plain hides *net.TCPConn, so that Pipe takes its buffered path rather than splice.
type plain struct{ net.Conn }

func (p plain) CloseWrite() error { return p.Conn.(*net.TCPConn).CloseWrite() }

// relayed starts Pipe between two TCP pairs and returns the programs' ends: the client
// (behind side a) and the target (behind side b).
func relayed(t *testing.T, wrap bool, configure func(a, b *Side)) (client, target *net.TCPConn, result chan [2]int64) {
	t.Helper()
	client, aConn := tcpPair(t)
	bConn, target := tcpPair(t)
	a, b := Side{Conn: aConn}, Side{Conn: bConn}
	if wrap {
		a.Conn, b.Conn = plain{aConn}, plain{bConn}
	}
	if configure != nil {
		configure(&a, &b)
	}
	result = make(chan [2]int64, 1)
	go func() {
		toB, toA := Pipe(a, b, Options{})
		result <- [2]int64{toB, toA}
	}()
	return client, target, result
}

func TestPipeCarriesHalfClosesBothWaysAndCounts(t *testing.T) {
	for _, wrap := range []bool{false, true} {
		name := map[bool]string{false: "splice", true: "buffered"}[wrap]
		t.Run(name, func(t *testing.T) {
			var countedB, countedA atomic.Int64
			client, target, result := relayed(t, wrap, func(a, b *Side) {
				a.Count = func(n int) { countedA.Add(int64(n)) }
				b.Count = func(n int) { countedB.Add(int64(n)) }
			})
			upload := bytes.Repeat([]byte("u"), 3<<20)
			go func() { client.Write(upload); client.CloseWrite() }()
			got, err := io.ReadAll(target) // ends at the half-close that crossed the relay
			if err != nil || !bytes.Equal(got, upload) {
				t.Fatalf("target read %d bytes, %v; want %d and EOF", len(got), err, len(upload))
			}
			// The client's half-close left the way back open.
			if _, err := io.WriteString(target, "answer"); err != nil {
				t.Fatal(err)
			}
			target.CloseWrite()
			back, err := io.ReadAll(client)
			if err != nil || string(back) != "answer" {
				t.Fatalf("client read %q, %v; want the answer and EOF", back, err)
			}
			n := <-result
			if n != [2]int64{int64(len(upload)), 6} || countedB.Load() != n[0] || countedA.Load() != n[1] {
				t.Fatalf("Pipe = %v, counted %d and %d", n, countedB.Load(), countedA.Load())
			}
		})
	}
}

func TestPipeAbortsTheOtherSideOnAnError(t *testing.T) {
	client, target, result := relayed(t, false, func(a, b *Side) {
		a.Abort = func() { Reset(a.Conn) }
	})
	if _, err := io.WriteString(target, "partial"); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 7)
	if _, err := io.ReadFull(client, buf); err != nil {
		t.Fatal(err)
	}
	Reset(target) // the target fails mid-answer
	_, err := io.ReadAll(client)
	if !errors.Is(err, syscall.ECONNRESET) {
		t.Fatalf("client read ended with %v, want ECONNRESET: an end of stream would pass the partial answer off as whole", err)
	}
	<-result
}

func TestPipeClosesRatherThanAbortsASideThatHasItsWholeAnswer(t *testing.T) {
	var mu sync.Mutex
	var aborted []string
	record := func(name string, c io.Closer) func() {
		return func() { mu.Lock(); aborted = append(aborted, name); mu.Unlock(); Reset(c) }
	}
	client, target, result := relayed(t, false, func(a, b *Side) {
		a.Abort = record("client", a.Conn)
		b.Abort = record("target", b.Conn)
	})
	// The target answers in full and ends; then it resets while the client still uploads.
	io.WriteString(target, "whole answer")
	target.CloseWrite()
	got, err := io.ReadAll(client)
	if err != nil || string(got) != "whole answer" {
		t.Fatalf("client read %q, %v", got, err)
	}
	Reset(target)
	for i := 0; i < 100; i++ {
		if _, err := client.Write(make([]byte, 64<<10)); err != nil {
			break
		}
	}
	<-result
	mu.Lock()
	defer mu.Unlock()
	if len(aborted) != 1 || aborted[0] != "target" {
		t.Fatalf("aborted %v, want only the target: the client had its whole answer", aborted)
	}
}

// noHalfClose can be closed but not half-closed.
type noHalfClose struct{ net.Conn }

func TestPipeTreatsASideThatCannotHalfCloseAsFailed(t *testing.T) {
	var aborted atomic.Bool
	client, target, result := relayed(t, false, func(a, b *Side) {
		b.Conn = noHalfClose{b.Conn.(net.Conn)}
		b.Abort = func() { aborted.Store(true); b.Conn.Close() }
	})
	client.CloseWrite()
	if _, err := io.ReadAll(target); err != nil {
		t.Fatal(err)
	}
	<-result
	if !aborted.Load() {
		t.Fatal("an end of input towards a side without CloseWrite did not abort it")
	}
}
