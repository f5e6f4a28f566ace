package wire

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"os"
	"syscall"
	"testing"
	"time"
)

// dialClosedPort returns the error of a real dial to a loopback port nobody listens on.
func dialClosedPort(t *testing.T) error {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	c, err := net.Dial("tcp", addr)
	if err == nil {
		c.Close()
		t.Fatal("dial to a closed port succeeded")
	}
	return err
}

// dialTimedOut returns the error of a real dial whose deadline has passed.
func dialTimedOut(t *testing.T) error {
	t.Helper()
	d := net.Dialer{Deadline: time.Now().Add(-time.Second)}
	c, err := d.Dial("tcp", "127.0.0.1:9")
	if err == nil {
		c.Close()
		t.Fatal("dial past its deadline succeeded")
	}
	return err
}

func TestStatusOf(t *testing.T) {
	live := context.Background()
	ended, cancel := context.WithCancel(context.Background())
	cancel()
	opErr := func(errno syscall.Errno) error {
		return &net.OpError{Op: "dial", Net: "tcp", Err: os.NewSyscallError("connect", errno)}
	}
	tests := []struct {
		name  string
		ctx   context.Context
		err   error
		want  Status
		known bool
	}{
		{"no error", live, nil, StatusOK, true},
		{"refused (real dial)", live, dialClosedPort(t), StatusRefused, true},
		{"timed out (real dial)", live, dialTimedOut(t), StatusTimeout, true},
		{"host unreachable", live, opErr(syscall.EHOSTUNREACH), StatusUnreachable, true},
		{"network unreachable", live, opErr(syscall.ENETUNREACH), StatusUnreachable, true},
		{"network down", live, opErr(syscall.ENETDOWN), StatusUnreachable, true},
		{"no source address", live, opErr(syscall.EADDRNOTAVAIL), StatusUnreachable, true},
		{"ETIMEDOUT", live, opErr(syscall.ETIMEDOUT), StatusTimeout, true},
		{"context deadline", live, fmt.Errorf("dial: %w", context.DeadlineExceeded), StatusTimeout, true},
		{"no such host", live, &net.OpError{Op: "dial", Err: &net.DNSError{Err: "no such host", Name: "x.example", IsNotFound: true}}, StatusDNSFailure, true},
		{"DNS timeout is a DNS failure", live, &net.DNSError{Err: "i/o timeout", Name: "x.example", IsTimeout: true}, StatusDNSFailure, true},
		{"policy refusal", live, fmt.Errorf("10.0.0.1 is private: %w", ErrDenied), StatusDenied, true},
		{"refusal from the peer", live, fmt.Errorf("dial: %w", &Error{Status: StatusLimit, Message: "256 streams"}), StatusLimit, true},
		{"TLS alert", live, fmt.Errorf("TLS handshake: %w", tls.AlertError(40)), StatusTLSFailure, true},
		{"certificate not verified", live, &tls.CertificateVerificationError{Err: errors.New("unknown authority")}, StatusTLSFailure, true},
		{"shutting down", ended, errors.New("operation was canceled"), StatusInternal, true},
		{"a timeout wins over shutdown", ended, context.DeadlineExceeded, StatusTimeout, true},
		{"unknown", live, errors.New("something else"), StatusUnreachable, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, known := StatusOf(tt.ctx, tt.err)
			if got != tt.want || known != tt.known {
				t.Errorf("StatusOf(%v) = %v, %v; want %v, %v", tt.err, got, known, tt.want, tt.known)
			}
		})
	}
}
