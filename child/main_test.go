package child

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"testing"

	"go.uber.org/goleak"
)

// runArgsVar, set to a JSON list PROGRAM ARGS..., makes this test binary call Run with them
// and its own streams and environment, and exit with the status: for tests that need a
// process of their own (a terminal, a process group).
const runArgsVar = "TESSEL_PROXY_TEST_CHILD_RUN"

// Every test runs under a goroutine-leak check: Run must leave nothing running behind it.
func TestMain(m *testing.M) {
	if encoded, ok := os.LookupEnv(runArgsVar); ok {
		var args []string
		if err := json.Unmarshal([]byte(encoded), &args); err != nil || len(args) == 0 {
			fmt.Fprintln(os.Stderr, runArgsVar+": want a JSON list PROGRAM ARGS...:", err)
			os.Exit(2)
		}
		status, err := Run(context.Background(), Options{Program: args[0], Args: args[1:], Env: os.Environ(),
			Stdin: os.Stdin, Stdout: os.Stdout, Stderr: os.Stderr})
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
		}
		os.Exit(status)
	}
	goleak.VerifyTestMain(m)
}
