package commands

import (
	"context"
	"crypto/tls"
	"encoding/base64"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"github.com/tessel/tessel-proxy/internal/syncbuf"
	"github.com/tessel/tessel-proxy/internal/testcert"
	"github.com/tessel/tessel-proxy/proxyserver"
)

const runTestToken = "run-test-token-7f3a9c"

// runTestProxy starts the real proxy server in-process on loopback with a self-signed
// certificate, and points this process's environment at it (t.Setenv: runMain gives `run`
// the process's environment). allowLoopback lets it dial loopback targets, which its
// default policy refuses. It returns the settings it made, as KEY=VALUE.
func runTestProxy(t *testing.T, allowLoopback bool) []string {
	t.Helper()
	cert := testcert.New(t)
	auth, err := proxyserver.NewStaticAuthenticator(runTestToken)
	if err != nil {
		t.Fatal(err)
	}
	policy := &proxyserver.Policy{}
	if allowLoopback {
		policy.Allow = []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}
	}
	srv, err := proxyserver.New(proxyserver.Config{
		TLS:           &tls.Config{Certificates: []tls.Certificate{cert.TLS}},
		Authenticator: auth,
		Policy:        policy,
	})
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	served := make(chan struct{})
	go func() { defer close(served); srv.Serve(ln) }()
	t.Cleanup(func() { srv.Close(); <-served })

	runTestEnv(t)
	settings := []string{
		"PROXY_HOST=127.0.0.1",
		"PROXY_PORT=" + strconv.Itoa(ln.Addr().(*net.TCPAddr).Port),
		"PROXY_CERT=" + string(cert.PEM),
		"PROXY_TOKEN=" + runTestToken,
		"PROXY_LOCAL=none",
	}
	for _, kv := range settings {
		k, v, _ := strings.Cut(kv, "=")
		t.Setenv(k, v)
	}
	return settings
}

// runTestEnv clears the variables that would make a test depend on this machine.
func runTestEnv(t *testing.T) {
	home := t.TempDir()
	t.Setenv("HOME", home)
	t.Setenv("XDG_CONFIG_HOME", filepath.Join(home, ".config"))
	for _, k := range []string{"PROXY_HOST", "PROXY_PORT", "PROXY_CERT", "PROXY_TOKEN", "TM_API_KEY",
		"PROXY_TRUSTED", "PROXY_IDLE", "PROXY_LOCAL", "PROXY_VIA", "_PROXY_DBG", "ALL_PROXY", "all_proxy",
		"HTTP_PROXY", "http_proxy", "HTTPS_PROXY", "https_proxy", "NO_PROXY", "no_proxy"} {
		t.Setenv(k, "")
		os.Unsetenv(k)
	}
}

// runMain runs the command line as `tessel-proxy ARGS...` and returns stdout, stderr and
// the exit status.
func runMain(t *testing.T, args ...string) (string, string, int) {
	t.Helper()
	var out, errb syncbuf.Buffer
	code := Main(IO{In: strings.NewReader(""), Out: &out, Err: &errb, LookupEnv: os.LookupEnv, Environ: os.Environ},
		append([]string{"tessel-proxy"}, args...))
	return out.String(), errb.String(), code
}

func needTool(t *testing.T, name, pkg string) {
	t.Helper()
	if _, err := exec.LookPath(name); err != nil {
		t.Fatalf("%s not found: install the %s package", name, pkg)
	}
}

func TestRunExitStatus(t *testing.T) {
	runTestProxy(t, true)
	notExec := filepath.Join(t.TempDir(), "script")
	os.WriteFile(notExec, []byte("#!/bin/sh\necho hi\n"), 0o644)

	cases := []struct {
		name     string
		args     []string
		want     int
		wantErr  string
		wantOut  string
		silentOK bool
	}{
		{"success", []string{"sh", "-c", "echo fine"}, 0, "", "fine\n", true},
		{"child status", []string{"sh", "-c", "exit 3"}, 3, "", "", true},
		{"killed by SIGTERM", []string{"sh", "-c", "kill -TERM $$"}, 128 + int(syscall.SIGTERM), "", "", true},
		{"not found", []string{"no-such-program-3f9a"}, 127, "no-such-program-3f9a: program not found", "", false},
		{"not executable", []string{notExec}, 126, "cannot execute", "", false},
		{"no program", nil, 2, "name the program", "", false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			out, stderr, code := runMain(t, append([]string{"run", "--"}, tc.args...)...)
			if code != tc.want {
				t.Fatalf("exit %d, want %d (stderr %q)", code, tc.want, stderr)
			}
			if !strings.Contains(stderr, tc.wantErr) {
				t.Fatalf("stderr %q should contain %q", stderr, tc.wantErr)
			}
			if tc.silentOK && stderr != "" {
				t.Fatalf("run added to stderr when the child ended on its own: %q", stderr)
			}
			if out != tc.wantOut {
				t.Fatalf("stdout %q, want %q", out, tc.wantOut)
			}
		})
	}
}

func TestRunRefusesToStart(t *testing.T) {
	unreachable := func() string {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer ln.Close()
		return strconv.Itoa(ln.Addr().(*net.TCPAddr).Port)
	}()
	cases := []struct {
		name    string
		env     map[string]string
		unset   []string
		wantErr []string
	}{
		{"malformed PROXY_PORT", map[string]string{"PROXY_PORT": "99999"}, nil, []string{"PROXY_PORT"}},
		{"malformed PROXY_TRUSTED", map[string]string{"PROXY_TRUSTED": "true-ish"}, nil, []string{"PROXY_TRUSTED"}},
		{"no token", nil, []string{"PROXY_TOKEN"}, []string{"no token", "tessel-proxy login", "PROXY_TOKEN"}},
		{"wrong token", map[string]string{"PROXY_TOKEN": "not-the-token"}, nil, []string{"refused the token", "tessel-proxy login"}},
		{"untrusted certificate", nil, []string{"PROXY_CERT"}, []string{"not trusted", "PROXY_CERT"}},
		{"unreachable proxy", map[string]string{"PROXY_PORT": unreachable}, nil, []string{"127.0.0.1:" + unreachable}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			runTestProxy(t, true)
			for k, v := range tc.env {
				t.Setenv(k, v)
			}
			for _, k := range tc.unset {
				os.Unsetenv(k)
			}
			marker := filepath.Join(t.TempDir(), "started")
			_, stderr, code := runMain(t, "run", "--", "touch", marker)
			if code != ExitRunFailed {
				t.Fatalf("exit %d, want %d (stderr %q)", code, ExitRunFailed, stderr)
			}
			for _, w := range tc.wantErr {
				if !strings.Contains(stderr, w) {
					t.Errorf("stderr %q should mention %q", stderr, w)
				}
			}
			if strings.Count(strings.TrimSpace(stderr), "\n") != 0 {
				t.Errorf("want one line on stderr, got %q", stderr)
			}
			if strings.Contains(stderr, runTestToken) {
				t.Errorf("stderr contains the token: %q", stderr)
			}
			if _, err := os.Stat(marker); err == nil {
				t.Fatal("the program was started although run failed")
			}
		})
	}
}

func TestRunChildEnvironment(t *testing.T) {
	runTestProxy(t, true)
	t.Setenv("TM_API_KEY", "api-key-should-not-leak")
	t.Setenv("NO_PROXY", "inherited.example")

	envOf := func(t *testing.T) map[string]string {
		out, stderr, code := runMain(t, "run", "--", "env")
		if code != 0 {
			t.Fatalf("run env: exit %d: %s", code, stderr)
		}
		return envMap(strings.Split(out, "\n"))
	}

	t.Run("PROXY_LOCAL=none", func(t *testing.T) {
		env := envOf(t)
		for _, k := range []string{"PROXY_TOKEN", "TM_API_KEY"} {
			if v, ok := env[k]; ok {
				t.Errorf("child sees %s=%q", k, v)
			}
		}
		for _, k := range []string{"NO_PROXY", "no_proxy"} {
			if v, ok := env[k]; ok {
				t.Errorf("with PROXY_LOCAL=none the child must not bypass the tunnel, but %s=%q", k, v)
			}
		}
		socks, http := env["ALL_PROXY"], env["HTTP_PROXY"]
		if !strings.HasPrefix(socks, "socks5h://tp-") || !strings.Contains(socks, "@127.0.0.1:") {
			t.Errorf("ALL_PROXY=%q, want socks5h://USER:SECRET@127.0.0.1:PORT", socks)
		}
		if !strings.HasPrefix(http, "http://tp-") {
			t.Errorf("HTTP_PROXY=%q, want http://USER:SECRET@127.0.0.1:PORT", http)
		}
		for _, k := range []string{"all_proxy", "http_proxy", "HTTPS_PROXY", "https_proxy"} {
			if env[k] == "" {
				t.Errorf("%s not set", k)
			}
		}
		if env["NODE_USE_ENV_PROXY"] != "1" {
			t.Errorf("NODE_USE_ENV_PROXY=%q, want 1", env["NODE_USE_ENV_PROXY"])
		}
		if env["PATH"] != os.Getenv("PATH") {
			t.Errorf("PATH not passed through")
		}
	})
	t.Run("default PROXY_LOCAL", func(t *testing.T) {
		os.Unsetenv("PROXY_LOCAL")
		env := envOf(t)
		want := "10.0.0.0/8,172.16.0.0/12,192.168.0.0/16,169.254.0.0/16,127.0.0.0/8,localhost"
		if env["NO_PROXY"] != want || env["no_proxy"] != want {
			t.Errorf("NO_PROXY=%q no_proxy=%q, want %q", env["NO_PROXY"], env["no_proxy"], want)
		}
	})
}

// envMap parses `env` output (or an environment list) into a map.
func envMap(lines []string) map[string]string {
	m := map[string]string{}
	for _, line := range lines {
		if k, v, ok := strings.Cut(line, "="); ok {
			m[k] = v
		}
	}
	return m
}

// TestRunUsesTheGivenEnvironment: the program's environment is built from the one run was
// given (IO.Environ), not from this process's.
func TestRunUsesTheGivenEnvironment(t *testing.T) {
	settings := runTestProxy(t, true)
	runTestEnv(t) // the proxy's settings reach run through the given environment only
	t.Setenv("TESSEL_PROXY_TEST_PROCESS_ONLY", "from the process")
	home := t.TempDir()
	given := append([]string{
		"PATH=" + os.Getenv("PATH"),
		"HOME=" + home,
		"XDG_CONFIG_HOME=" + filepath.Join(home, ".config"),
		"TESSEL_PROXY_TEST_GIVEN=given value",
		"HTTP_PROXY=http://inherited.example:1",
		"TM_API_KEY=api-key-should-not-leak",
	}, settings...)
	givenMap := envMap(given)
	var out, errb syncbuf.Buffer
	err := runRun(context.Background(), &RunOptions{
		IO: IO{In: strings.NewReader(""), Out: &out, Err: &errb,
			LookupEnv: func(k string) (string, bool) { v, ok := givenMap[k]; return v, ok },
			Environ:   func() []string { return given }},
		Program: "env",
	})
	if err != nil {
		t.Fatalf("run env: %v (stderr %q)", err, errb.String())
	}
	env := envMap(strings.Split(out.String(), "\n"))
	if env["TESSEL_PROXY_TEST_GIVEN"] != "given value" || env["HOME"] != home {
		t.Errorf("the program lacks the given environment: TESSEL_PROXY_TEST_GIVEN=%q HOME=%q",
			env["TESSEL_PROXY_TEST_GIVEN"], env["HOME"])
	}
	if v, ok := env["TESSEL_PROXY_TEST_PROCESS_ONLY"]; ok {
		t.Errorf("the program sees this process's environment: TESSEL_PROXY_TEST_PROCESS_ONLY=%q", v)
	}
	for _, k := range []string{"PROXY_TOKEN", "TM_API_KEY"} {
		if v, ok := env[k]; ok {
			t.Errorf("the program sees %s=%q", k, v)
		}
	}
	for _, k := range []string{"HTTP_PROXY", "http_proxy", "HTTPS_PROXY", "https_proxy"} {
		if !strings.HasPrefix(env[k], "http://tp-") || !strings.Contains(env[k], "@127.0.0.1:") {
			t.Errorf("%s=%q, want the front: http://USER:SECRET@127.0.0.1:PORT", k, env[k])
		}
	}
	for _, k := range []string{"ALL_PROXY", "all_proxy"} {
		if !strings.HasPrefix(env[k], "socks5h://tp-") {
			t.Errorf("%s=%q, want the front: socks5h://USER:SECRET@127.0.0.1:PORT", k, env[k])
		}
	}
}

func TestRunCurlThroughTheTunnel(t *testing.T) {
	needTool(t, "curl", "curl")
	web := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "hello %s", r.URL.Path)
	}))
	defer web.Close()
	https := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "hello over tls")
	}))
	defer https.Close()

	t.Run("allowed", func(t *testing.T) {
		runTestProxy(t, true)
		for _, tc := range []struct {
			args []string
			want string
		}{
			{[]string{web.URL + "/plain"}, "hello /plain"},
			{[]string{"-k", https.URL}, "hello over tls"}, // CONNECT, end-to-end TLS
		} {
			out, stderr, code := runMain(t, append([]string{"run", "--", "curl", "-sS", "--max-time", "20"}, tc.args...)...)
			if code != 0 || out != tc.want {
				t.Fatalf("curl %v through run: exit %d, %q, stderr %s", tc.args, code, out, stderr)
			}
		}
		// Through the SOCKS side of the front, as ALL_PROXY sends it.
		out, stderr, code := runMain(t, "run", "--", "sh", "-c", `curl -sS --max-time 20 -x "$ALL_PROXY" "$0"`, web.URL+"/socks")
		if code != 0 || out != "hello /socks" {
			t.Fatalf("curl via ALL_PROXY: exit %d, %q, stderr %s", code, out, stderr)
		}
	})
	t.Run("the proxy's policy applies, so the tunnel was used", func(t *testing.T) {
		runTestProxy(t, false) // loopback targets refused by the server
		out, stderr, code := runMain(t, "run", "--", "curl", "-sS", "--max-time", "20", "-w", "\n%{http_code}", web.URL+"/plain")
		if code != 0 || !strings.HasSuffix(out, "\n502") || !strings.Contains(out, "denied") {
			t.Fatalf("want a 502 naming the proxy's denial, got exit %d, %q, stderr %s", code, out, stderr)
		}
	})
	t.Run("PROXY_LOCAL goes direct", func(t *testing.T) {
		runTestProxy(t, false)
		t.Setenv("PROXY_LOCAL", "127.0.0.0/8")
		// curl honours NO_PROXY itself; -x with --noproxy '' forces it through the front,
		// which must route the local host directly.
		out, stderr, code := runMain(t, "run", "--", "sh", "-c", `curl -sS --max-time 20 --noproxy '' -x "$HTTP_PROXY" "$0"`, web.URL+"/local")
		if code != 0 || out != "hello /local" {
			t.Fatalf("exit %d, %q, stderr %s", code, out, stderr)
		}
	})
}

// TestRunDebugLogsNoSecrets: --debug says where each connection went, and neither the
// token nor the local proxy's password appears in it.
func TestRunDebugLogsNoSecrets(t *testing.T) {
	needTool(t, "curl", "curl")
	web := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "ok")
	}))
	defer web.Close()
	runTestProxy(t, true)
	out, stderr, code := runMain(t, "run", "--debug", "--", "sh", "-c",
		`printf '%s\n' "$HTTP_PROXY"; curl -sS --max-time 20 "$0"`, web.URL+"/")
	if code != 0 || !strings.HasSuffix(out, "ok") {
		t.Fatalf("exit %d, %q, stderr %s", code, out, stderr)
	}
	u, err := url.Parse(strings.SplitN(out, "\n", 2)[0])
	if err != nil {
		t.Fatal(err)
	}
	pass, _ := u.User.Password()
	if pass == "" {
		t.Fatalf("HTTP_PROXY %q carries no password", u)
	}
	for _, secret := range []string{runTestToken, pass, base64.StdEncoding.EncodeToString([]byte(u.User.Username() + ":" + pass))} {
		if strings.Contains(stderr, secret) {
			t.Fatalf("--debug output holds a secret %q:\n%s", secret, stderr)
		}
	}
	for _, want := range []string{"tunnel open", "msg=route", "direct=false"} {
		if !strings.Contains(stderr, want) {
			t.Errorf("--debug output lacks %q:\n%s", want, stderr)
		}
	}
}
