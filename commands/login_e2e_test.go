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
	"syscall"
	"testing"
	"time"

	"github.com/tessel/tessel-proxy/internal/syncbuf"
	"github.com/tessel/tessel-proxy/internal/testoidc"
)

// buildBinary builds tessel-proxy into a temporary directory.
func buildBinary(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "tessel-proxy")
	cmd := exec.Command("go", "build", "-o", bin, "..")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

// The whole path a user takes: log in at the issuer (device flow, token into the keyring),
// run the proxy server that accepts that issuer's tokens, and fetch a page with curl through
// `run`, which finds the stored token by itself.
func TestLoginServeRunEndToEnd(t *testing.T) {
	needTool(t, "curl", "curl")
	s := testoidc.Start(t, testoidc.Options{})
	bin := buildBinary(t)
	dir := t.TempDir()
	profile := testProfile(t)

	web := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "hello through the tunnel %s", r.URL.Path)
	}))
	defer web.Close()

	// The server.
	certFile, keyFile := filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	serve := exec.Command(bin, "serve", "--listen", "127.0.0.1:0", "--cert", certFile, "--key", keyFile,
		"--self-signed", "--oidc-issuer", s.Issuer, "--oidc-audience", testoidc.Audience, "--allow", "127.0.0.0/8")
	serve.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + dir}
	serveErr, err := serve.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	serve.Stdout = io.Discard
	if err := serve.Start(); err != nil {
		t.Fatal(err)
	}
	served := make(chan struct{})
	addrc := make(chan string, 1)
	var serveLog syncbuf.Buffer
	go func() {
		defer close(served)
		sc := bufio.NewScanner(serveErr)
		listening := regexp.MustCompile(`msg=listening addr=(\S+)`)
		for sc.Scan() {
			serveLog.Write([]byte(sc.Text() + "\n"))
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
	var addr string
	select {
	case addr = <-addrc:
	case <-served:
		t.Fatalf("serve exited:\n%s", serveLog.String())
	case <-time.After(30 * time.Second):
		t.Fatalf("serve did not listen within 30s:\n%s", serveLog.String())
	}
	host, port, _ := strings.Cut(addr, ":")

	// The user logs in; the test plays the browser on another device.
	env := loginEnv(t, map[string]string{"TESSEL_PROXY_ISSUER": s.Issuer})
	pr, pw := io.Pipe()
	userDone := make(chan error, 1)
	go func() {
		var code string
		sc := bufio.NewScanner(pr)
		started := false
		for sc.Scan() {
			line := sc.Text()
			if c, ok := strings.CutPrefix(line, "First copy your one-time code: "); ok {
				code = c
			}
			if strings.HasPrefix(line, "  http") && !started {
				started = true
				uri := strings.TrimSpace(line)
				go func() { userDone <- testoidc.CompleteDevice(context.Background(), uri, code, "ivan") }()
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

	// run, in a fresh process with no token in its environment, uses the stored login.
	run := exec.Command(bin, "run", "--", "curl", "-sS", "--max-time", "20", web.URL+"/page")
	run.Env = []string{
		"PATH=" + os.Getenv("PATH"), "HOME=" + dir,
		"DBUS_SESSION_BUS_ADDRESS=" + os.Getenv("DBUS_SESSION_BUS_ADDRESS"),
		"TESSEL_PROXY_PROFILE=" + profile,
		"PROXY_HOST=" + host, "PROXY_PORT=" + port, "PROXY_CERT=" + certFile, "PROXY_LOCAL=none",
	}
	out, err := run.CombinedOutput()
	if err != nil {
		t.Fatalf("run curl: %v\n%s\nserver log:\n%s", err, out, serveLog.String())
	}
	if string(out) != "hello through the tunnel /page" {
		t.Errorf("curl through run printed %q", out)
	}
	if !strings.Contains(serveLog.String(), "ivan") {
		t.Errorf("the server did not log the tunnel as the logged-in subject:\n%s", serveLog.String())
	}

	// A token the issuer did not sign gets nowhere.
	run.Env = append(run.Env, "PROXY_TOKEN=not-a-valid-token")
	bad := exec.Command(bin, run.Args[1:]...)
	bad.Env = run.Env
	if out, err := bad.CombinedOutput(); err == nil || !strings.Contains(string(out), "PROXY_TOKEN") {
		t.Errorf("run with a forged PROXY_TOKEN: %v\n%s", err, out)
	}
}
