package commands

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tessel/tessel-proxy/internal/syncbuf"
	"github.com/tessel/tessel-proxy/internal/testoidc"
	"github.com/tessel/tessel-proxy/oauth"
)

// loginEnv is a user's environment for login tests: a home of its own (so the credentials file
// and device env file are the test's), the real session bus for the keyring, and extra.
func loginEnv(t *testing.T, extra map[string]string) func(string) (string, bool) {
	t.Helper()
	if os.Getenv("DBUS_SESSION_BUS_ADDRESS") == "" {
		t.Fatal("DBUS_SESSION_BUS_ADDRESS is not set: login tests use the real Secret Service; run them through scripts/test.sh")
	}
	env := map[string]string{
		"HOME":                     t.TempDir(),
		"PATH":                     os.Getenv("PATH"),
		"DBUS_SESSION_BUS_ADDRESS": os.Getenv("DBUS_SESSION_BUS_ADDRESS"),
	}
	for k, v := range extra {
		env[k] = v
	}
	return func(k string) (string, bool) { v, ok := env[k]; return v, ok }
}

// testProfile is a keyring profile of the test's own, removed afterwards, so that tests never
// touch the user's logins.
func testProfile(t *testing.T) string {
	t.Helper()
	p := fmt.Sprintf("test-%s-%d", strings.ReplaceAll(t.Name(), "/", "-"), time.Now().UnixNano())
	t.Cleanup(func() {
		Main(IO{In: strings.NewReader(""), Out: io.Discard, Err: io.Discard, LookupEnv: loginEnv(t, nil)},
			[]string{"tessel-proxy", "logout", "--profile", p})
	})
	return p
}

// mainWith runs tessel-proxy with args and returns stdout, stderr and the exit status.
func mainWith(env func(string) (string, bool), stdin string, args ...string) (string, string, int) {
	var out, errb syncbuf.Buffer
	code := Main(IO{In: strings.NewReader(stdin), Out: &out, Err: &errb, LookupEnv: env}, append([]string{"tessel-proxy"}, args...))
	return out.String(), errb.String(), code
}

// Tests here run Main one at a time: urfave/cli shares its help flag between apps, and two
// apps parsing flags at once race on it.

func TestLoginDeviceStatusTokenLogout(t *testing.T) {
	s := testoidc.Start(t, testoidc.Options{})
	env := loginEnv(t, map[string]string{"TESSEL_PROXY_ISSUER": s.Issuer}) // no DISPLAY: device flow
	profile := testProfile(t)

	// The user reads the code on stderr and approves it in a browser elsewhere.
	pr, pw := io.Pipe()
	var stderr syncbuf.Buffer
	userDone := make(chan error, 1)
	go func() {
		var uri, code string
		sc := bufio.NewScanner(pr)
		for sc.Scan() {
			line := sc.Text()
			stderr.Write([]byte(line + "\n"))
			if c, ok := strings.CutPrefix(line, "First copy your one-time code: "); ok {
				code = c
			}
			if strings.HasPrefix(line, "  http") && uri == "" {
				uri = strings.TrimSpace(line)
				go func() { userDone <- testoidc.CompleteDevice(context.Background(), uri, code, "grace") }()
			}
		}
	}()
	code := Main(IO{In: strings.NewReader(""), Out: io.Discard, Err: pw, LookupEnv: env},
		[]string{"tessel-proxy", "login", "--profile", profile})
	pw.Close()
	if code != 0 {
		t.Fatalf("login exit %d: %s", code, stderr.String())
	}
	if err := <-userDone; err != nil {
		t.Fatal(err)
	}
	if want := "Logged in at " + s.Issuer + " as grace (profile " + profile + "); token stored in the OS keyring."; !strings.Contains(stderr.String(), want) {
		t.Errorf("login said %q, want %q", stderr.String(), want)
	}

	out, errs, code := mainWith(env, "", "auth", "status", "--profile", profile)
	if code != 0 {
		t.Fatalf("auth status exit %d: %s", code, errs)
	}
	for _, want := range []string{"account:  grace", "issuer:   " + s.Issuer, "token:    keyring", "expires:"} {
		if !strings.Contains(out, want) {
			t.Errorf("auth status lacks %q:\n%s", want, out)
		}
	}

	out, _, code = mainWith(env, "", "auth", "status", "--json", "--profile", profile)
	var st authStatus
	if err := json.Unmarshal([]byte(out), &st); err != nil || code != 0 {
		t.Fatalf("auth status --json: %v, exit %d: %s", err, code, out)
	}
	if st.Source != "keyring" || st.Subject != "grace" || st.Issuer != s.Issuer || st.Expiry == nil || st.Expired || !st.Refreshable {
		t.Errorf("auth status --json = %+v", st)
	}

	out, _, code = mainWith(env, "", "auth", "token", "--profile", profile)
	token := strings.TrimSpace(out)
	if code != 0 || strings.Count(token, ".") != 2 {
		t.Fatalf("auth token exit %d printed %q, want a JWT", code, out)
	}
	if strings.Contains(mustRun(t, env, "auth", "status", "--json", "--profile", profile), token) {
		t.Error("auth status --json shows the token")
	}

	// The stored token is what run would use, unless the environment overrides it.
	withEnv := loginEnv(t, map[string]string{"TESSEL_PROXY_PROFILE": profile, "TM_API_KEY": "api-key-from-env"})
	if out := mustRun(t, withEnv, "auth", "token"); strings.TrimSpace(out) != "api-key-from-env" {
		t.Errorf("auth token with TM_API_KEY set printed %q", out)
	}
	if out := mustRun(t, withEnv, "auth", "status"); !strings.Contains(out, "token:    TM_API_KEY") {
		t.Errorf("auth status with TM_API_KEY set:\n%s", out)
	}

	_, errs, code = mainWith(env, "", "logout", "--profile", profile)
	if code != 0 || !strings.Contains(errs, "the issuer revoked the token") {
		t.Fatalf("logout exit %d: %s", code, errs)
	}
	_, errs, code = mainWith(env, "", "auth", "status", "--profile", profile)
	if code != 1 || !strings.Contains(errs, "not logged in") || !strings.Contains(errs, "tessel-proxy login") {
		t.Errorf("auth status after logout: exit %d: %s", code, errs)
	}
}

func mustRun(t *testing.T, env func(string) (string, bool), args ...string) string {
	t.Helper()
	out, errs, code := mainWith(env, "", args...)
	if code != 0 {
		t.Fatalf("%s: exit %d: %s", strings.Join(args, " "), code, errs)
	}
	return out
}

// On a desktop, login opens the browser ($BROWSER here, a script that hands the URL to the
// test, which plays the user); --insecure-storage keeps the token in a 0600 file.
func TestLoginWebThroughBrowserWithInsecureStorage(t *testing.T) {
	s := testoidc.Start(t, testoidc.Options{})
	dir := t.TempDir()
	urlFile := filepath.Join(dir, "opened-url")
	script := filepath.Join(dir, "browser")
	if err := os.WriteFile(script, []byte("#!/bin/sh\nprintf '%s\\n' \"$1\" > "+urlFile+".tmp && mv "+urlFile+".tmp "+urlFile+"\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	xdg := filepath.Join(dir, "config")
	env := loginEnv(t, map[string]string{"DISPLAY": ":0", "BROWSER": script, "XDG_CONFIG_HOME": xdg})
	profile := testProfile(t)

	userDone := make(chan error, 1)
	go func() {
		deadline := time.Now().Add(30 * time.Second)
		for time.Now().Before(deadline) {
			if b, err := os.ReadFile(urlFile); err == nil {
				userDone <- testoidc.CompleteBrowser(context.Background(), strings.TrimSpace(string(b)), "heidi")
				return
			}
			time.Sleep(20 * time.Millisecond)
		}
		userDone <- fmt.Errorf("the browser was never opened")
	}()
	_, errs, code := mainWith(env, "", "login", "--issuer", s.Issuer, "--scopes", "openid offline_access email",
		"--profile", profile, "--insecure-storage")
	if code != 0 {
		t.Fatalf("login exit %d: %s", code, errs)
	}
	if err := <-userDone; err != nil {
		t.Fatal(err)
	}
	credsFile := filepath.Join(xdg, "tessel-proxy", "credentials.json")
	for _, want := range []string{"warning: storing the token unencrypted in " + credsFile, "as heidi@example.test"} {
		if !strings.Contains(errs, want) {
			t.Errorf("login stderr lacks %q:\n%s", want, errs)
		}
	}
	fi, err := os.Stat(credsFile)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("%s has mode %v, want 0600", credsFile, fi.Mode().Perm())
	}
	if out := mustRun(t, env, "auth", "status", "--profile", profile); !strings.Contains(out, "token:    file "+credsFile) {
		t.Errorf("auth status:\n%s", out)
	}
	mustRun(t, env, "logout", "--profile", profile)
	if _, err := os.Stat(credsFile); !os.IsNotExist(err) {
		t.Errorf("credentials file still there after logout: %v", err)
	}
}

func TestLoginWithToken(t *testing.T) {
	env := loginEnv(t, nil)
	profile := testProfile(t)
	_, errs, code := mainWith(env, "tm-key-0123456789\n", "login", "--with-token", "--profile", profile)
	if code != 0 || !strings.Contains(errs, "Stored the API key") {
		t.Fatalf("login --with-token exit %d: %s", code, errs)
	}
	if out := mustRun(t, env, "auth", "token", "--profile", profile); out != "tm-key-0123456789\n" {
		t.Errorf("auth token printed %q", out)
	}
	// PROXY_TOKEN beats TM_API_KEY beats the keyring.
	both := loginEnv(t, map[string]string{"TESSEL_PROXY_PROFILE": profile, "TM_API_KEY": "k", "PROXY_TOKEN": "p"})
	if out := mustRun(t, both, "auth", "token"); out != "p\n" {
		t.Errorf("auth token with PROXY_TOKEN and TM_API_KEY set printed %q", out)
	}
	if out := mustRun(t, both, "auth", "status"); !strings.Contains(out, "PROXY_TOKEN") {
		t.Errorf("auth status:\n%s", out)
	}
	_, errs, code = mainWith(env, "", "logout", "--profile", profile)
	if code != 0 || !strings.Contains(errs, "revoke it where you created it") {
		t.Errorf("logout exit %d: %s", code, errs)
	}
}

func TestLoginUsage(t *testing.T) {
	home := t.TempDir()
	env := func(k string) (string, bool) {
		if k == "HOME" {
			return home, true
		}
		return "", false
	}
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"login", "--device", "--web"}, "--device and --web exclude each other"},
		{[]string{"login", "--device"}, "no issuer: pass --issuer URL or set TESSEL_PROXY_ISSUER"},
		{[]string{"login", "--scopes", ",", "--issuer", "http://127.0.0.1:1"}, "--scopes is empty"},
		{[]string{"login", "extra"}, "login takes no arguments"},
	} {
		_, errs, code := mainWith(env, "", tc.args...)
		if code != 2 || !strings.Contains(errs, tc.want) {
			t.Errorf("%v: exit %d, stderr %q; want 2 and %q", tc.args, code, errs, tc.want)
		}
	}
}

// Without a Secret Service, login refuses before the user signs in and says what to install;
// it never falls back to a file on its own. godbus keeps its first bus connection for the
// whole process, so the no-bus case runs in a child process.
func TestLoginWithoutKeyring(t *testing.T) {
	home := t.TempDir()
	cmd := exec.Command(os.Args[0])
	cmd.Env = append(os.Environ(),
		`TESSEL_PROXY_TEST_MAIN_ARGS=["login","--with-token","--profile","nobus"]`,
		"DBUS_SESSION_BUS_ADDRESS=unix:path="+filepath.Join(home, "no-bus"),
		"HOME="+home, "XDG_CONFIG_HOME=")
	cmd.Stdin = strings.NewReader("tm-key\n")
	out, err := cmd.CombinedOutput()
	if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 1 {
		t.Fatalf("login without a keyring: %v, want exit 1\n%s", err, out)
	}
	for _, want := range []string{"tessel-proxy: login: the OS keyring is not available", "gnome-keyring", "--insecure-storage"} {
		if !strings.Contains(string(out), want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	if entries, _ := os.ReadDir(filepath.Join(home, ".config", "tessel-proxy")); len(entries) != 0 {
		t.Errorf("login wrote %v although it failed", entries)
	}
}

// Ctrl-C while the device flow waits for approval ends login at once, storing nothing.
func TestLoginDeviceCtrlC(t *testing.T) {
	s := testoidc.Start(t, testoidc.Options{})
	home := t.TempDir()
	cmd := exec.Command(os.Args[0])
	cmd.Env = append(os.Environ(),
		`TESSEL_PROXY_TEST_MAIN_ARGS=["login","--device","--insecure-storage","--issuer","`+s.Issuer+`"]`,
		"HOME="+home, "XDG_CONFIG_HOME=")
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var said strings.Builder
	sc := bufio.NewScanner(stderr)
	for sc.Scan() {
		said.WriteString(sc.Text() + "\n")
		if strings.HasPrefix(sc.Text(), "Waiting for approval") {
			_ = cmd.Process.Signal(os.Interrupt)
		}
	}
	err = cmd.Wait()
	if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 1 || !strings.Contains(said.String(), "login cancelled") {
		t.Fatalf("login after Ctrl-C: %v\n%s", err, said.String())
	}
	if _, err := os.Stat(filepath.Join(home, ".config", "tessel-proxy", "credentials.json")); !os.IsNotExist(err) {
		t.Errorf("a cancelled login stored credentials: %v", err)
	}
}

// login --help is where a user learns the flows and what a self-hosted issuer must offer.
func TestLoginHelpTeachesFlowsAndIssuerSetup(t *testing.T) {
	out, errs, code := mainWith(func(string) (string, bool) { return "", false }, "", "login", "--help")
	if code != 0 {
		t.Fatalf("login --help: exit %d: %s", code, errs)
	}
	for _, want := range []string{
		"--device", "--web", "--with-token", "--insecure-storage", // the flows and the keyring-less way out
		"public client", "token endpoint auth method none", "device code", "PKCE (S256)", "refresh token",
		"http://127.0.0.1/callback", "--oidc-audience", // what to register at the issuer
		"Examples:", "tessel-proxy login --issuer https://", "login --with-token < key.txt",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("login --help lacks %q:\n%s", want, out)
		}
	}
}

// An expired token that nothing renews makes auth status fail, with advice that fits where
// the token came from: login cannot help while PROXY_TOKEN overrides it.
func TestAuthStatusExpiredToken(t *testing.T) {
	f := newEnvFixture(t)
	expired := time.Now().Add(-time.Hour).Truncate(time.Second)
	f.vars["PROXY_TOKEN"] = unsignedJWT("bo", expired)
	for _, args := range [][]string{{"auth", "status"}, {"auth", "status", "--json"}} {
		out, errs, code := f.run("", args...)
		if code != 1 || !strings.Contains(errs, "expired at "+expired.UTC().Format(time.RFC3339)) ||
			!strings.Contains(errs, "replace PROXY_TOKEN") || strings.Contains(errs, "tessel-proxy login") {
			t.Errorf("%v with an expired PROXY_TOKEN: exit %d, stderr %q; want 1 and advice to replace PROXY_TOKEN", args, code, errs)
		}
		if !strings.Contains(out, "bo") {
			t.Errorf("%v printed no details: %q", args, out)
		}
	}

	// A pasted key kept by login --insecure-storage, expired: log in again.
	delete(f.vars, "PROXY_TOKEN")
	f.vars["TESSEL_PROXY_PROFILE"] = "expired-work"
	path := filepath.Join(f.home, ".config", "tessel-proxy", "credentials.json")
	os.MkdirAll(filepath.Dir(path), 0o700)
	blob, _ := json.Marshal(map[string]any{"profiles": map[string]any{f.vars["TESSEL_PROXY_PROFILE"]: map[string]any{
		"access_token": "pasted-key", "expiry": expired}}})
	os.WriteFile(path, blob, 0o600)
	_, errs, code := f.run("", "auth", "status")
	if code != 1 || !strings.Contains(errs, "run `tessel-proxy login --profile "+f.vars["TESSEL_PROXY_PROFILE"]+"` again") {
		t.Errorf("auth status with an expired stored key: exit %d, stderr %q", code, errs)
	}

	// Not expired: exit 0.
	f.vars["PROXY_TOKEN"] = unsignedJWT("bo", time.Now().Add(time.Hour))
	if _, errs, code := f.run("", "auth", "status"); code != 0 {
		t.Errorf("auth status with a valid PROXY_TOKEN: exit %d: %s", code, errs)
	}
}

// A refresh that rewrites the credentials file keeps it private; once the issuer has revoked
// the grant, auth token fails (exit 1) and says to log in again, without printing a token.
func TestAuthTokenAfterRefreshAndRevocation(t *testing.T) {
	s := testoidc.Start(t, testoidc.Options{AccessTokenTTL: 30 * time.Second}) // inside the refresh margin
	dir := t.TempDir()
	urlFile := filepath.Join(dir, "opened-url")
	script := filepath.Join(dir, "browser")
	if err := os.WriteFile(script, []byte("#!/bin/sh\nprintf '%s\\n' \"$1\" > "+urlFile+".tmp && mv "+urlFile+".tmp "+urlFile+"\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	xdg := filepath.Join(dir, "config")
	env := loginEnv(t, map[string]string{"DISPLAY": ":0", "BROWSER": script, "XDG_CONFIG_HOME": xdg})
	profile := testProfile(t)
	userDone := make(chan error, 1)
	go func() {
		deadline := time.Now().Add(30 * time.Second)
		for time.Now().Before(deadline) {
			if b, err := os.ReadFile(urlFile); err == nil {
				userDone <- testoidc.CompleteBrowser(context.Background(), strings.TrimSpace(string(b)), "judy")
				return
			}
			time.Sleep(20 * time.Millisecond)
		}
		userDone <- fmt.Errorf("the browser was never opened")
	}()
	if _, errs, code := mainWith(env, "", "login", "--web", "--issuer", s.Issuer, "--profile", profile, "--insecure-storage"); code != 0 {
		t.Fatalf("login exit %d: %s", code, errs)
	}
	if err := <-userDone; err != nil {
		t.Fatal(err)
	}
	credsFile := filepath.Join(xdg, "tessel-proxy", "credentials.json")
	load := func() *oauth.Credentials {
		c, err := oauth.File{Path: credsFile}.Load(profile)
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	before := load()

	token := strings.TrimSpace(mustRun(t, env, "auth", "token", "--profile", profile))
	after := load()
	if token == before.AccessToken || after.AccessToken != token || after.RefreshToken == before.RefreshToken {
		t.Errorf("auth token did not refresh and store the rotated tokens")
	}
	if fi, err := os.Stat(credsFile); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("credentials file after the refresh rewrote it: %v, %v; want mode 0600", fi.Mode(), err)
	}

	if revoked, err := oauth.Revoke(context.Background(), after); err != nil || !revoked {
		t.Fatalf("revoke: %v, %v", revoked, err)
	}
	out, errs, code := mainWith(env, "", "auth", "token", "--profile", profile)
	if code != 1 || out != "" || !strings.Contains(errs, "run `tessel-proxy login --profile "+profile+"` again") {
		t.Errorf("auth token after revocation: exit %d, stdout %q, stderr %q; want 1 and advice to log in again", code, out, errs)
	}
	if strings.Contains(errs, after.RefreshToken) || strings.Contains(errs, after.AccessToken) {
		t.Errorf("the error shows a token: %s", errs)
	}
}

// Without a Secret Service, auth status says first what to do (log in), then why a login
// may be there unseen; it does not wait for the missing bus.
func TestAuthStatusWithoutKeyring(t *testing.T) {
	home := t.TempDir()
	cmd := exec.Command(os.Args[0])
	cmd.Env = append(os.Environ(),
		`TESSEL_PROXY_TEST_MAIN_ARGS=["auth","status","--profile","nobus"]`,
		"DBUS_SESSION_BUS_ADDRESS=unix:path="+filepath.Join(home, "no-bus"),
		"HOME="+home, "XDG_CONFIG_HOME=", "PROXY_TOKEN=", "TM_API_KEY=")
	out, err := cmd.CombinedOutput()
	if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 1 {
		t.Fatalf("auth status without a keyring: %v, want exit 1\n%s", err, out)
	}
	msg := string(out)
	todo := strings.Index(msg, "not logged in (profile nobus): run `tessel-proxy login --profile nobus`, or set PROXY_TOKEN")
	why := strings.Index(msg, "the OS keyring is not available")
	if todo < 0 || why < todo || strings.Count(msg, "\n") != 1 {
		t.Errorf("want one line saying to log in, then that the keyring is not available:\n%s", msg)
	}
}

// login --with-token on a terminal says what it waits for instead of seeming to hang. The
// terminal is a real pseudo-terminal (python3's pty module) on which the user has typed the key
// and Ctrl-D.
func TestLoginWithTokenPromptsOnTerminal(t *testing.T) {
	needTool(t, "python3", "python3")
	home := t.TempDir()
	cmd := exec.Command("python3", "-c", `import os, pty, subprocess, sys
m, s = pty.openpty()
os.write(m, b"typed-key-123\n\x04")
sys.exit(subprocess.call(sys.argv[1:], stdin=s))`, os.Args[0])
	cmd.Env = append(os.Environ(),
		`TESSEL_PROXY_TEST_MAIN_ARGS=["login","--with-token","--insecure-storage","--profile","tty"]`,
		"HOME="+home, "XDG_CONFIG_HOME=")
	out, err := cmd.CombinedOutput()
	if err != nil || !strings.Contains(string(out), "Paste the API key, then press Enter and Ctrl-D") {
		t.Fatalf("login --with-token on a terminal: %v\n%s", err, out)
	}
	if c, err := (oauth.File{Path: filepath.Join(home, ".config", "tessel-proxy", "credentials.json")}).Load("tty"); err != nil || c.AccessToken != "typed-key-123" {
		t.Errorf("stored %+v, %v", c, err)
	}

	// Piped input needs no prompt.
	f := newEnvFixture(t)
	_, errs, code := f.run("piped-key\n", "login", "--with-token", "--insecure-storage", "--profile", "tty")
	if code != 0 || strings.Contains(errs, "Paste") {
		t.Errorf("login --with-token from a pipe: exit %d: %s", code, errs)
	}
}
