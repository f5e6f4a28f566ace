//go:build linux

package e2e

import (
	"os"
	"strconv"
	"testing"

	"github.com/tessel/tessel-proxy/internal/testcert"
)

func itoa(n int) string { return strconv.Itoa(n) }

// writeSelfSigned writes a self-signed certificate for 127.0.0.1 that nothing else uses: a
// client that trusts only it must refuse the dev server.
func writeSelfSigned(t *testing.T, path string) {
	t.Helper()
	if err := os.WriteFile(path, testcert.New(t).PEM, 0o644); err != nil {
		t.Fatal(err)
	}
}

func writeFile(path, content string) error { return os.WriteFile(path, []byte(content), 0o644) }

func readFile(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
