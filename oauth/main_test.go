package oauth

import (
	"os"
	"testing"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m,
		// godbus keeps one session-bus connection, with its reader, for the whole process.
		goleak.IgnoreTopFunction("github.com/godbus/dbus/v5.(*Conn).inWorker"),
		goleak.IgnoreAnyFunction("github.com/godbus/dbus/v5.(*Conn).inWorker"),
		goleak.IgnoreAnyFunction("github.com/godbus/dbus/v5.(*unixTransport).ReadMessage"),
		goleak.IgnoreAnyFunction("github.com/godbus/dbus/v5.(*Conn).outWorker"),
		goleak.IgnoreTopFunction("github.com/godbus/dbus/v5.newConn.func1"),
	)
}

// requireSecretService fails a keyring test that cannot reach a Secret Service: those tests
// run against the real one that scripts/test.sh starts.
func requireSecretService(t *testing.T) {
	t.Helper()
	if os.Getenv("DBUS_SESSION_BUS_ADDRESS") == "" {
		t.Fatal("DBUS_SESSION_BUS_ADDRESS is not set: keyring tests need a D-Bus session with an " +
			"unlocked gnome-keyring; run them through scripts/test.sh")
	}
}
