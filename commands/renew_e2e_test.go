package commands

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/tessel/tessel-proxy/internal/syncbuf"
	"github.com/tessel/tessel-proxy/internal/testoidc"
)

// deviceLogin logs profile in at s with the device flow, the test playing the user's browser.
func deviceLogin(t *testing.T, env func(string) (string, bool), profile, user string) {
	t.Helper()
	pr, pw := io.Pipe()
	userDone := make(chan error, 1)
	go func() {
		var code string
		started := false
		sc := bufio.NewScanner(pr)
		for sc.Scan() {
			line := sc.Text()
			if c, ok := strings.CutPrefix(line, "First copy your one-time code: "); ok {
				code = c
			}
			if strings.HasPrefix(line, "  http") && !started {
				started = true
				uri := strings.TrimSpace(line)
				go func() { userDone <- testoidc.CompleteDevice(context.Background(), uri, code, user) }()
			}
		}
	}()
	var loginErr syncbuf.Buffer
	code := Main(IO{In: strings.NewReader(""), Out: io.Discard, Err: io.MultiWriter(pw, &loginErr), LookupEnv: env},
		[]string{"tessel-proxy", "login", "--device", "--profile", profile})
	pw.Close()
	if code != 0 {
		t.Fatalf("login exit %d: %s", code, loginErr.String())
	}
	if err := <-userDone; err != nil {
		t.Fatal(err)
	}
}

// oidcServe is a `serve` that accepts the access tokens of an issuer.
type oidcServe struct {
	host, port, cert string
	log              *syncbuf.Buffer
}

func startOIDCServe(t *testing.T, bin, issuer string) *oidcServe {
	t.Helper()
	dir := t.TempDir()
	s := &oidcServe{cert: filepath.Join(dir, "cert.pem"), log: &syncbuf.Buffer{}}
	serve := exec.Command(bin, "serve", "--listen", "127.0.0.1:0", "--cert", s.cert, "--key", filepath.Join(dir, "key.pem"),
		"--self-signed", "--oidc-issuer", issuer, "--oidc-audience", testoidc.Audience, "--allow", "127.0.0.0/8")
	serve.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + dir}
	stderr, err := serve.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	serve.Stdout = io.Discard
	if err := serve.Start(); err != nil {
		t.Fatal(err)
	}
	served := make(chan struct{})
	addrc := make(chan string, 1)
	go func() {
		defer close(served)
		sc := bufio.NewScanner(stderr)
		listening := regexp.MustCompile(`msg=listening addr=(\S+)`)
		for sc.Scan() {
			s.log.Write([]byte(sc.Text() + "\n"))
			if m := listening.FindStringSubmatch(sc.Text()); m != nil {
				addrc <- m[1]
			}
		}
		_ = serve.Wait()
	}()
	t.Cleanup(func() {
		_ = serve.Process.Signal(syscall.SIGTERM)
		<-served
	})
	select {
	case addr := <-addrc:
		s.host, s.port, _ = strings.Cut(addr, ":")
	case <-served:
		t.Fatalf("serve exited:\n%s", s.log)
	case <-time.After(30 * time.Second):
		t.Fatalf("serve did not listen within 30s:\n%s", s.log)
	}
	return s
}

// A run outlives its access token: the server closes the tunnel when the token expires, and
// the next connection's tunnel must authenticate with a renewed one. The issuer hands out
// 15 s access tokens; the program fetches, sleeps 25 s, and fetches again.
func TestRunRenewsItsAccessToken(t *testing.T) {
	needTool(t, "curl", "curl")
	s := testoidc.Start(t, testoidc.Options{AccessTokenTTL: 15 * time.Second})
	bin := buildBinary(t)
	srv := startOIDCServe(t, bin, s.Issuer)
	web := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "hello %s\n", r.URL.Path)
	}))
	defer web.Close()

	env := loginEnv(t, map[string]string{"TESSEL_PROXY_ISSUER": s.Issuer})
	profile := testProfile(t)
	deviceLogin(t, env, profile, "judy")

	home, _ := env("HOME")
	script := `curl -sS --fail --max-time 20 "$1/one" && sleep 25 && curl -sS --fail --max-time 20 "$1/two"`
	run := exec.Command(bin, "run", "--debug", "--", "sh", "-c", script, "sh", web.URL)
	run.Env = []string{
		"PATH=" + os.Getenv("PATH"), "HOME=" + home,
		"DBUS_SESSION_BUS_ADDRESS=" + os.Getenv("DBUS_SESSION_BUS_ADDRESS"),
		"TESSEL_PROXY_PROFILE=" + profile,
		"PROXY_HOST=" + srv.host, "PROXY_PORT=" + srv.port, "PROXY_CERT=" + srv.cert, "PROXY_LOCAL=none",
	}
	var stdout, stderr syncbuf.Buffer
	run.Stdout, run.Stderr = &stdout, &stderr
	if err := run.Run(); err != nil {
		t.Fatalf("run: %v\nstdout:\n%s\nstderr:\n%s\nserve log:\n%s", err, &stdout, &stderr, srv.log)
	}
	if got := stdout.String(); got != "hello /one\nhello /two\n" {
		t.Fatalf("the program printed %q\nstderr:\n%s\nserve log:\n%s", got, &stderr, srv.log)
	}
	if n := strings.Count(srv.log.String(), "tunnel open"); n < 2 {
		t.Fatalf("serve logged %d tunnel(s); the second fetch should have needed a new one after the token expired\n%s", n, srv.log)
	}
}

// Several `tessel-proxy auth token` at once, for one login, against an issuer that rotates
// refresh tokens (each may be used once) and hands out access tokens short enough that every
// one of them refreshes: each must print a token, and the login must still work afterwards.
func TestParallelAuthTokenWithOneTimeRefreshTokens(t *testing.T) {
	s := testoidc.Start(t, testoidc.Options{AccessTokenTTL: 15 * time.Second})
	bin := buildBinary(t)
	env := loginEnv(t, map[string]string{"TESSEL_PROXY_ISSUER": s.Issuer})
	profile := testProfile(t)
	deviceLogin(t, env, profile, "mallory")

	home, _ := env("HOME")
	procEnv := []string{
		"PATH=" + os.Getenv("PATH"), "HOME=" + home,
		"DBUS_SESSION_BUS_ADDRESS=" + os.Getenv("DBUS_SESSION_BUS_ADDRESS"),
	}
	authToken := func() (string, error) {
		cmd := exec.Command(bin, "auth", "token", "--profile", profile)
		cmd.Env = procEnv
		var out, errb strings.Builder
		cmd.Stdout, cmd.Stderr = &out, &errb
		if err := cmd.Run(); err != nil {
			return "", fmt.Errorf("%v: %s", err, errb.String())
		}
		return strings.TrimSpace(out.String()), nil
	}
	const n = 4
	var wg sync.WaitGroup
	errs := make([]error, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var token string
			token, errs[i] = authToken()
			if errs[i] == nil && strings.Count(token, ".") != 2 {
				errs[i] = fmt.Errorf("printed %q, not a JWT", token)
			}
		}()
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Errorf("auth token %d of %d at once: %v", i+1, n, err)
		}
	}
	if _, err := authToken(); err != nil {
		t.Errorf("auth token after the parallel ones: %v", err)
	}
}
