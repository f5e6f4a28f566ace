package testsshd

import (
	"os/exec"
	"strconv"
	"strings"
	"testing"
)

func run(t *testing.T, s *Server, command string) string {
	t.Helper()
	out, err := exec.Command("ssh", "-F", s.ClientConfig, "-o", "BatchMode=yes", "-p", strconv.Itoa(s.Port),
		s.User+"@127.0.0.1", command).CombinedOutput()
	if err != nil {
		t.Fatalf("ssh %q: %v: %s", command, err, out)
	}
	return string(out)
}

func TestPlainSession(t *testing.T) {
	s := Start(t, Options{Env: map[string]string{"HOME": "/tmp/testsshd-home", "XDG_CONFIG_HOME": "/tmp/x y"}})
	out := run(t, s, `echo "$HOME|$XDG_CONFIG_HOME"`)
	if strings.TrimSpace(out) != "/tmp/testsshd-home|/tmp/x y" {
		t.Errorf("SetEnv did not reach the session: %q", out)
	}
}

func TestBusyBoxSession(t *testing.T) {
	s := Start(t, Options{BusyBox: true})
	// The client's command runs under sh -c as tessel-proxy's does; that sh must be BusyBox,
	// and no tool outside BusyBox may be found.
	out := run(t, s, `sh -c 'readlink /proc/$$/exe; command -v bash python3 flock || echo none-found'`)
	if !strings.Contains(out, "busybox") || !strings.Contains(out, "none-found") {
		t.Errorf("session is not BusyBox-only: %q", out)
	}
}
