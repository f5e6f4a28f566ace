package commands

import (
	"encoding/json"
	"fmt"
	"os"
	"testing"

	"go.uber.org/goleak"
)

// mainArgsVar, set to a JSON list of arguments, makes this test binary run as tessel-proxy
// with them instead of running tests: for tests that need a process of their own (a
// terminal, signals, several at once).
const mainArgsVar = "TESSEL_PROXY_TEST_MAIN_ARGS"

// Every command test runs under a goroutine-leak check: a command that returns must leave
// nothing running behind it.
func TestMain(m *testing.M) {
	if encoded, ok := os.LookupEnv(mainArgsVar); ok {
		var args []string
		if err := json.Unmarshal([]byte(encoded), &args); err != nil {
			fmt.Fprintln(os.Stderr, mainArgsVar+":", err)
			os.Exit(2)
		}
		os.Exit(Main(IO{In: os.Stdin, Out: os.Stdout, Err: os.Stderr, LookupEnv: os.LookupEnv, Environ: os.Environ},
			append([]string{"tessel-proxy"}, args...)))
	}
	goleak.VerifyTestMain(m,
		// go-keyring shares one session-bus connection per process, kept open on purpose.
		goleak.IgnoreAnyFunction("github.com/godbus/dbus/v5.(*Conn).inWorker"),
		goleak.IgnoreAnyFunction("github.com/godbus/dbus/v5.(*Conn).outWorker"),
		goleak.IgnoreTopFunction("github.com/godbus/dbus/v5.newConn.func1"),
	)
}
