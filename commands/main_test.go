package commands

import (
	"testing"

	"go.uber.org/goleak"
)

// Every command test runs under a goroutine-leak check: a command that returns must leave
// nothing running behind it.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m,
		// go-keyring shares one session-bus connection per process, kept open on purpose.
		goleak.IgnoreAnyFunction("github.com/godbus/dbus/v5.(*Conn).inWorker"),
		goleak.IgnoreAnyFunction("github.com/godbus/dbus/v5.(*Conn).outWorker"),
		goleak.IgnoreTopFunction("github.com/godbus/dbus/v5.newConn.func1"),
	)
}
