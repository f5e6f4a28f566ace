// Package testoidc runs a real OAuth 2.0 / OpenID Connect authorization server (the
// oidc-provider npm package, in oauth/testdata/oidcserver) for tests, and completes a user's
// side of a sign-in by submitting the provider's own HTML forms, as a person in a browser
// would.
package testoidc

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/net/html"
)

// ClientID is the public client (no secret) the server knows, and Audience the access token
// audience it issues JWTs for unless a request names another `urn:` resource.
const (
	ClientID = "tessel-proxy"
	Audience = "urn:tessel-proxy"
)

// Options configures a server. The zero value gives long-lived tokens and a 1 s polling
// interval for the device flow.
type Options struct {
	AccessTokenTTL  time.Duration // default 1 h
	RefreshTokenTTL time.Duration // default 24 h
	DeviceInterval  int           // seconds, default 1
	ForceSlowDown   bool          // answer the first pending device poll with slow_down
	NBFOffset       time.Duration // add nbf = now + NBFOffset to access tokens
	KeysFile        string        // signing keys; created with a fresh key when missing
	Port            int           // default: a free port
}

// Server is a running authorization server. Tests stop it through t.Cleanup.
type Server struct {
	Issuer string // http://127.0.0.1:PORT
	Port   int

	opts Options
	mu   sync.Mutex
	cmd  *exec.Cmd
	done chan struct{}
	logs *strings.Builder
}

// Dir is the directory of the Node server (package.json, server.js, node_modules).
func Dir() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "..", "..", "oauth", "testdata", "oidcserver")
}

// Start runs a server and waits until it accepts connections. It fails the test, saying what
// to install, when node or the npm packages are missing.
func Start(t testing.TB, opts Options) *Server {
	t.Helper()
	if _, err := exec.LookPath("node"); err != nil {
		t.Fatal("node is not installed: the OAuth tests need Node.js 20+ (scripts/install-deps.sh)")
	}
	if _, err := os.Stat(filepath.Join(Dir(), "node_modules", "oidc-provider")); err != nil {
		t.Fatalf("oidc-provider is not installed: run `npm ci` in %s (scripts/install-deps.sh does)", Dir())
	}
	pickPort := opts.Port == 0
	for attempt := 1; ; attempt++ {
		if pickPort {
			opts.Port = freePort(t)
		}
		s := &Server{Issuer: "http://127.0.0.1:" + strconv.Itoa(opts.Port), Port: opts.Port, opts: opts}
		err := s.start()
		if err == nil {
			t.Cleanup(s.Stop)
			return s
		}
		// A port found free can be taken by another process before node binds it; pick
		// another rather than fail the test.
		if pickPort && attempt < 5 && strings.Contains(err.Error(), "EADDRINUSE") {
			continue
		}
		t.Fatal(err)
	}
}

func freePort(t testing.TB) int {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

func (s *Server) start() error {
	o := s.opts
	env := append(os.Environ(),
		"PORT="+strconv.Itoa(o.Port),
		"CLIENT_ID="+ClientID,
		"AUDIENCE="+Audience,
		"NODE_NO_WARNINGS=1",
	)
	if o.AccessTokenTTL > 0 {
		env = append(env, "ACCESS_TOKEN_TTL="+strconv.Itoa(int(o.AccessTokenTTL/time.Second)))
	}
	if o.RefreshTokenTTL > 0 {
		env = append(env, "REFRESH_TOKEN_TTL="+strconv.Itoa(int(o.RefreshTokenTTL/time.Second)))
	}
	if o.DeviceInterval > 0 {
		env = append(env, "DEVICE_INTERVAL="+strconv.Itoa(o.DeviceInterval))
	}
	if o.ForceSlowDown {
		env = append(env, "FORCE_SLOW_DOWN=1")
	}
	if o.NBFOffset > 0 {
		env = append(env, "NBF_OFFSET="+strconv.Itoa(int(o.NBFOffset/time.Second)))
	}
	if o.KeysFile != "" {
		env = append(env, "KEYS_FILE="+o.KeysFile)
	}
	cmd := exec.Command("node", "server.js")
	cmd.Dir = Dir()
	cmd.Env = env
	// The server must not outlive the test binary, even when the binary is killed.
	cmd.SysProcAttr = procAttr()
	logs := &strings.Builder{}
	var logMu sync.Mutex
	cmd.Stderr = writerFunc(func(p []byte) (int, error) {
		logMu.Lock()
		defer logMu.Unlock()
		return logs.Write(p)
	})
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return err
	}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start the OAuth test server: %w", err)
	}
	done := make(chan struct{})
	ready := make(chan bool, 1)
	go func() {
		sc := bufio.NewScanner(stdout)
		signalled := false
		for sc.Scan() {
			if !signalled && strings.HasPrefix(sc.Text(), "listening ") {
				ready <- true
				signalled = true
			}
		}
		if !signalled {
			ready <- false
		}
		_ = cmd.Wait()
		close(done)
	}()
	select {
	case ok := <-ready:
		if !ok {
			<-done
			logMu.Lock()
			defer logMu.Unlock()
			return fmt.Errorf("the OAuth test server exited before listening:\n%s", logs.String())
		}
	case <-time.After(30 * time.Second):
		kill(cmd)
		<-done
		return errors.New("the OAuth test server did not start within 30s")
	}
	s.mu.Lock()
	s.cmd, s.done, s.logs = cmd, done, logs
	s.mu.Unlock()
	return nil
}

// oneShot opens a connection a request: a pooled connection to a server that Restart killed
// would fail a POST, which Go does not retry.
var oneShot = &http.Client{Transport: &http.Transport{DisableKeepAlives: true}, Timeout: 30 * time.Second}

type writerFunc func([]byte) (int, error)

func (f writerFunc) Write(p []byte) (int, error) { return f(p) }

// Stop kills the server and waits for it to exit. Calling it twice is harmless.
func (s *Server) Stop() {
	s.mu.Lock()
	cmd, done := s.cmd, s.done
	s.cmd = nil
	s.mu.Unlock()
	if cmd == nil {
		return
	}
	kill(cmd)
	<-done
}

// Restart stops the server and starts it again on the same port with the same options (and
// so, without KeysFile, with a new signing key: a key rotation). All tokens and sessions of the
// old process are gone.
func (s *Server) Restart(t testing.TB) {
	t.Helper()
	s.Stop()
	var err error
	for range 50 { // the port can take a moment to become free again
		if err = s.start(); err == nil {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatal(err)
}

// ServiceToken returns a JWT access token for audience (Audience when empty), obtained with the
// client credentials grant of the server's machine client; its subject is "test-service".
func (s *Server) ServiceToken(t testing.TB, audience string) string {
	t.Helper()
	if audience == "" {
		audience = Audience
	}
	form := url.Values{"grant_type": {"client_credentials"}, "resource": {audience}}
	req, _ := http.NewRequest(http.MethodPost, s.Issuer+"/token", strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.SetBasicAuth("test-service", "test-service-secret")
	resp, err := oneShot.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var body struct {
		AccessToken string `json:"access_token"`
		Error       string `json:"error_description"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil || body.AccessToken == "" {
		t.Fatalf("client credentials token: status %d, %v %s", resp.StatusCode, err, body.Error)
	}
	return body.AccessToken
}

// Stats are the device-flow polling counters of the server.
type Stats struct {
	Polls     int `json:"polls"`     // pending polls answered
	SlowDowns int `json:"slowDowns"` // of which answered with slow_down
}

// Stats returns the server's device-flow polling counters.
func (s *Server) Stats() (Stats, error) {
	resp, err := oneShot.Get(s.Issuer + "/test/stats")
	if err != nil {
		return Stats{}, err
	}
	defer resp.Body.Close()
	var st Stats
	err = json.NewDecoder(resp.Body).Decode(&st)
	return st, err
}

// CompleteDevice plays the user of the device flow: opens verificationURI, enters userCode,
// signs in as user, confirms the device and consents.
func CompleteDevice(ctx context.Context, verificationURI, userCode, user string) error {
	return submitForms(ctx, verificationURI, map[string]string{
		"user_code": userCode, "login": user, "password": "any-password",
	}, "Sign-in Success")
}

// CompleteBrowser plays the user of the authorization code flow: opens authURL, signs in as
// user and consents. The provider then redirects to the client's loopback address, which this
// follows, so the client receives its authorization code.
func CompleteBrowser(ctx context.Context, authURL, user string) error {
	return submitForms(ctx, authURL, map[string]string{"login": user, "password": "any-password"}, "")
}

// submitForms loads start and keeps submitting the first form of each page with fields
// filled in, until a page has no form. The final page must contain want.
func submitForms(ctx context.Context, start string, fields map[string]string, want string) error {
	jar, _ := cookiejar.New(nil)
	client := &http.Client{Jar: jar, Timeout: 30 * time.Second}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, start, nil)
	if err != nil {
		return err
	}
	for step := 0; step < 10; step++ {
		resp, err := client.Do(req)
		if err != nil {
			return fmt.Errorf("step %d (%s %s): %w", step, req.Method, req.URL, err)
		}
		body, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil {
			return err
		}
		if resp.StatusCode >= 400 {
			return fmt.Errorf("step %d (%s %s): status %d: %s", step, req.Method, req.URL, resp.StatusCode, body)
		}
		f, ok := firstForm(string(body))
		if !ok {
			if !strings.Contains(string(body), want) {
				return fmt.Errorf("final page lacks %q: %s", want, body)
			}
			return nil
		}
		action, err := resp.Request.URL.Parse(f.action)
		if err != nil {
			return err
		}
		values := url.Values{}
		for name, v := range f.values {
			values.Set(name, v)
		}
		for _, name := range f.blanks {
			if v, ok := fields[name]; ok {
				values.Set(name, v)
			}
		}
		req, err = http.NewRequestWithContext(ctx, http.MethodPost, action.String(), strings.NewReader(values.Encode()))
		if err != nil {
			return err
		}
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	return errors.New("too many forms")
}

type form struct {
	action string
	values map[string]string // hidden inputs and the chosen submit button
	blanks []string          // inputs the user types into
}

// firstForm finds the first form in page. Of its buttons it presses the first that is not an
// abort button.
func firstForm(page string) (form, bool) {
	doc, err := html.Parse(strings.NewReader(page))
	if err != nil {
		return form{}, false
	}
	var f *form
	pressed, closed := false, false
	var walk func(n *html.Node)
	walk = func(n *html.Node) {
		if n.Type == html.ElementNode {
			attr := func(k string) string {
				for _, a := range n.Attr {
					if a.Key == k {
						return a.Val
					}
				}
				return ""
			}
			if n.Data == "form" && f == nil {
				f = &form{action: attr("action"), values: map[string]string{}}
				for c := n.FirstChild; c != nil; c = c.NextSibling {
					walk(c)
				}
				closed = true
				return
			}
			switch {
			case f == nil || closed:
			case n.Data == "input" && attr("name") != "":
				if attr("type") == "hidden" {
					f.values[attr("name")] = attr("value")
				} else {
					f.blanks = append(f.blanks, attr("name"))
					if v := attr("value"); v != "" {
						f.values[attr("name")] = v
					}
				}
			case n.Data == "button" && !pressed && attr("name") != "" && attr("name") != "abort":
				f.values[attr("name")] = attr("value")
				pressed = true
			}
		}
		for c := n.FirstChild; c != nil; c = c.NextSibling {
			walk(c)
		}
	}
	walk(doc)
	if f == nil {
		return form{}, false
	}
	return *f, true
}
