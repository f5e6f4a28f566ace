//go:build linux

package e2e

import (
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// Each bad input stops `run` before the child starts, with one clear line that names the
// cause and exit status 125; nothing hangs (runTool fails the test after two minutes).
func TestRunRefusesBadSetups(t *testing.T) {
	needTools(t, "curl")
	srv := startDevServer(t)
	target := greetingServer(t, false)

	closed, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closedPort := closed.Addr().(*net.TCPAddr).Port
	closed.Close()

	otherCert := filepath.Join(t.TempDir(), "other.pem")
	writeSelfSigned(t, otherCert)
	marker := filepath.Join(t.TempDir(), "child-ran")

	cases := []struct {
		name     string
		env      []string
		wantCode int
		wantMsg  []string // all must appear in stderr (case-insensitive)
	}{
		{"port out of range", []string{"PROXY_PORT=99999"}, 125, []string{"PROXY_PORT"}},
		{"port not a number", []string{"PROXY_PORT=https"}, 125, []string{"PROXY_PORT"}},
		{"trusted not a boolean", []string{"PROXY_TRUSTED=maybe"}, 125, []string{"PROXY_TRUSTED"}},
		{"idle garbage", []string{"PROXY_IDLE=soon"}, 125, []string{"PROXY_IDLE"}},
		{"local bad cidr", []string{"PROXY_LOCAL=10.0.0.0/33"}, 125, []string{"PROXY_LOCAL"}},
		{"cert file missing", []string{"PROXY_CERT=/nonexistent/proxy.pem"}, 125, []string{"PROXY_CERT"}},
		{"no token", []string{"PROXY_TOKEN=", "TM_API_KEY="}, 125, []string{"token", "login"}},
		{"wrong token", []string{"PROXY_TOKEN=not-the-token"}, 125, []string{"token"}},
		{"unreachable proxy", []string{"PROXY_PORT=" + itoa(closedPort)}, 125, []string{itoa(closedPort)}},
		{"untrusted certificate", []string{"PROXY_CERT=" + otherCert}, 125, []string{"certificate"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			os.Remove(marker)
			env := srv.clientEnv(t, tc.env...)
			r := runTool(t, env, "run", "--", "sh", "-c", "touch "+marker+"; curl -sS "+target.URL)
			if r.code != tc.wantCode {
				t.Fatalf("exit %d, want %d; stderr:\n%s", r.code, tc.wantCode, r.stderr)
			}
			for _, m := range tc.wantMsg {
				if !strings.Contains(strings.ToLower(r.stderr), strings.ToLower(m)) {
					t.Errorf("stderr does not mention %q:\n%s", m, r.stderr)
				}
			}
			if lines := strings.Count(strings.TrimSpace(r.stderr), "\n") + 1; lines > 3 {
				t.Errorf("want a short message, got %d lines:\n%s", lines, r.stderr)
			}
			if _, err := os.Stat(marker); err == nil {
				t.Errorf("the child program ran despite the bad setup")
			}
			if tok := srv.env["PROXY_TOKEN"]; strings.Contains(r.stderr, tok) {
				t.Errorf("stderr leaks the token")
			}
		})
	}
}

func TestRunExitStatusAndMissingProgram(t *testing.T) {
	srv := startDevServer(t)
	env := srv.clientEnv(t)
	if r := runTool(t, env, "run", "--", "sh", "-c", "exit 7"); r.code != 7 {
		t.Errorf("child exit 7: run exited %d; stderr:\n%s", r.code, r.stderr)
	}
	if r := runTool(t, env, "run", "--", "sh", "-c", "kill -TERM $$"); r.code != 128+15 {
		t.Errorf("child killed by SIGTERM: run exited %d, want 143; stderr:\n%s", r.code, r.stderr)
	}
	if r := runTool(t, env, "run", "--", "no-such-program-anywhere"); r.code != 127 {
		t.Errorf("missing program: run exited %d, want 127; stderr:\n%s", r.code, r.stderr)
	}
	notExec := filepath.Join(t.TempDir(), "script")
	os.WriteFile(notExec, []byte("#!/bin/sh\necho hi\n"), 0o644)
	if r := runTool(t, env, "run", "--", notExec); r.code != 126 {
		t.Errorf("program not executable: run exited %d, want 126; stderr:\n%s", r.code, r.stderr)
	}
	// The token stays out of the child's environment.
	r := runTool(t, append(env, "TM_API_KEY=another-secret"), "run", "--", "env")
	if r.code != 0 {
		t.Fatalf("run env: exit %d:\n%s", r.code, r.stderr)
	}
	for _, line := range strings.Split(r.stdout, "\n") {
		if strings.HasPrefix(line, "PROXY_TOKEN=") || strings.HasPrefix(line, "TM_API_KEY=") ||
			strings.Contains(line, srv.env["PROXY_TOKEN"]) {
			t.Errorf("child environment carries a token: %q", line)
		}
	}
	for _, want := range []string{"ALL_PROXY=socks5h://", "HTTPS_PROXY=http://", "http_proxy=http://", "NODE_USE_ENV_PROXY=1"} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("child environment lacks %s", want)
		}
	}
}
