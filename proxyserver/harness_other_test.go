//go:build !linux

package proxyserver

import (
	"context"
	"errors"
	"net"
	"testing"
)

// isolatedDialer and fullBacklogPort need Linux (network namespaces, raw listen backlogs);
// the tests run on Linux, as CI does.
type isolatedDialer struct{ t testing.TB }

func (d isolatedDialer) DialContext(context.Context, string, string) (net.Conn, error) {
	d.t.Fatal("isolatedDialer needs Linux network namespaces")
	return nil, errors.New("unsupported")
}

func fullBacklogPort(t testing.TB) uint16 {
	t.Fatal("fullBacklogPort needs Linux")
	return 0
}
