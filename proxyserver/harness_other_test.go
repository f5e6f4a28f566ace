//go:build !linux

package proxyserver

import (
	"context"
	"errors"
	"net"
	"testing"
)

// isolatedDialer and fullBacklogAt need Linux (network namespaces, raw listen backlogs);
// the tests run on Linux, as CI does.
type isolatedDialer struct{ t testing.TB }

func (d isolatedDialer) DialContext(context.Context, string, string) (net.Conn, error) {
	d.t.Fatal("isolatedDialer needs Linux network namespaces")
	return nil, errors.New("unsupported")
}

func fullBacklogAt(t testing.TB, ip [4]byte, port uint16) uint16 {
	t.Fatal("fullBacklogAt needs Linux")
	return 0
}
