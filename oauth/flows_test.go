package oauth

import (
	"bufio"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/tessel/tessel-proxy/internal/testoidc"
)

func discover(t *testing.T, s *testoidc.Server) Client {
	t.Helper()
	iss, err := Discover(context.Background(), s.Issuer)
	if err != nil {
		t.Fatal(err)
	}
	return Client{Issuer: iss, ClientID: testoidc.ClientID, Scopes: DefaultScopes()}
}

func payload(t *testing.T, jwt string) map[string]any {
	t.Helper()
	parts := strings.Split(jwt, ".")
	if len(parts) != 3 {
		t.Fatalf("access token is not a JWT (%d parts)", len(parts))
	}
	b, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	return m
}

// checkLoggedIn asserts what a user relies on after login: a JWT access token for the proxy's
// audience, a refresh token, and the account.
func checkLoggedIn(t *testing.T, s *testoidc.Server, c *Credentials, user, account string) {
	t.Helper()
	claims := payload(t, c.AccessToken)
	if claims["aud"] != testoidc.Audience || claims["iss"] != s.Issuer || claims["sub"] != user {
		t.Errorf("access token claims %v, want aud %s, iss %s, sub %s", claims, testoidc.Audience, s.Issuer, user)
	}
	if c.RefreshToken == "" {
		t.Error("no refresh token")
	}
	if c.Subject != user || c.Account != account || c.Issuer != s.Issuer || c.ClientID != testoidc.ClientID {
		t.Errorf("credentials subject %q account %q issuer %q client %q", c.Subject, c.Account, c.Issuer, c.ClientID)
	}
	if time.Until(c.Expiry) < time.Minute {
		t.Errorf("expiry %v, want about an hour ahead", c.Expiry)
	}
}

func TestDeviceLoginHonoursIntervalAndSlowDown(t *testing.T) {
	t.Parallel()
	s := testoidc.Start(t, testoidc.Options{DeviceInterval: 1, ForceSlowDown: true})
	client := discover(t, s)
	userDone := make(chan error, 1)
	creds, err := DeviceLogin(context.Background(), client, func(p DevicePrompt) {
		if p.UserCode == "" || !strings.HasPrefix(p.VerificationURI, s.Issuer) {
			t.Errorf("prompt %+v", p)
		}
		go func() {
			// Approve only after the client has polled once (and been told to slow down), so
			// that it must poll again at its lengthened interval.
			for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(50 * time.Millisecond) {
				st, err := s.Stats()
				if err != nil {
					userDone <- err
					return
				}
				if st.Polls > 0 {
					break
				}
				if time.Now().After(deadline) {
					userDone <- errors.New("the client never polled")
					return
				}
			}
			userDone <- testoidc.CompleteDevice(context.Background(), p.VerificationURI, p.UserCode, "alice")
		}()
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := <-userDone; err != nil {
		t.Fatal(err)
	}
	checkLoggedIn(t, s, creds, "alice", "alice")
	// The server answers slow_down to any poll sooner than its interval (plus 5 s for each
	// slow_down), and to the first poll on purpose: a client that polls faster than told, or
	// ignores slow_down, collects more than one.
	st, err := s.Stats()
	if err != nil {
		t.Fatal(err)
	}
	if st.SlowDowns != 1 || st.Polls != 1 {
		t.Errorf("server sent %d slow_down answers in %d pending polls; want 1 in 1 (the forced one)", st.SlowDowns, st.Polls)
	}
}

func TestDeviceLoginCancel(t *testing.T) {
	t.Parallel()
	s := testoidc.Start(t, testoidc.Options{})
	client := discover(t, s)
	ctx, cancel := context.WithCancel(context.Background())
	_, err := DeviceLogin(ctx, client, func(DevicePrompt) { cancel() })
	if err == nil || !strings.Contains(err.Error(), "login cancelled") {
		t.Fatalf("err = %v, want login cancelled", err)
	}
}

func TestDeviceLoginDenied(t *testing.T) {
	t.Parallel()
	s := testoidc.Start(t, testoidc.Options{})
	client := discover(t, s)
	client.ClientID = "no-such-client"
	_, err := DeviceLogin(context.Background(), client, func(DevicePrompt) { t.Error("prompt shown for an unknown client") })
	if err == nil || !strings.Contains(err.Error(), "invalid_client") {
		t.Fatalf("err = %v, want invalid_client", err)
	}
}

func TestWebLogin(t *testing.T) {
	t.Parallel()
	s := testoidc.Start(t, testoidc.Options{})
	client := discover(t, s)
	client.Scopes = ParseScopes("openid,offline_access,email")
	var opened string
	userDone := make(chan error, 1)
	open := func(u string) error {
		opened = u
		go func() { userDone <- testoidc.CompleteBrowser(context.Background(), u, "bob") }()
		return nil
	}
	creds, err := WebLogin(context.Background(), client, open, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if err := <-userDone; err != nil {
		t.Fatal(err)
	}
	checkLoggedIn(t, s, creds, "bob", "bob@example.test")
	q := mustQuery(t, opened)
	redirect, _ := url.Parse(q.Get("redirect_uri"))
	if q.Get("code_challenge_method") != "S256" || q.Get("code_challenge") == "" || q.Get("state") == "" ||
		redirect.Hostname() != "127.0.0.1" || redirect.Port() == "" {
		t.Errorf("authorization URL %s: want PKCE S256, a state and a loopback redirect", opened)
	}
}

func mustQuery(t *testing.T, u string) url.Values {
	t.Helper()
	parsed, err := url.Parse(u)
	if err != nil {
		t.Fatal(err)
	}
	return parsed.Query()
}

// A request to the loopback redirect with the wrong state (another site, or a stale tab) is
// refused and does not end the login; the real redirect then completes it.
func TestWebLoginRefusesWrongState(t *testing.T) {
	t.Parallel()
	s := testoidc.Start(t, testoidc.Options{})
	client := discover(t, s)
	userDone := make(chan error, 1)
	open := func(u string) error {
		go func() {
			parsed, err := url.Parse(u)
			if err != nil {
				userDone <- err
				return
			}
			forged := parsed.Query().Get("redirect_uri") + "?code=attacker-code&state=guess"
			resp, err := http.Get(forged)
			if err != nil {
				userDone <- err
				return
			}
			resp.Body.Close()
			if resp.StatusCode != http.StatusBadRequest {
				userDone <- errors.New("forged redirect answered " + resp.Status)
				return
			}
			userDone <- testoidc.CompleteBrowser(context.Background(), u, "carol")
		}()
		return nil
	}
	creds, err := WebLogin(context.Background(), client, open, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if err := <-userDone; err != nil {
		t.Fatal(err)
	}
	if creds.Subject != "carol" {
		t.Errorf("logged in as %q, want carol", creds.Subject)
	}
}

// When no browser opens, the user copies the printed URL.
func TestWebLoginPrintsURLWhenBrowserFails(t *testing.T) {
	t.Parallel()
	s := testoidc.Start(t, testoidc.Options{})
	client := discover(t, s)
	pr, pw := io.Pipe()
	userDone := make(chan error, 1)
	go func() {
		sc := bufio.NewScanner(pr)
		for sc.Scan() {
			if line := strings.TrimSpace(sc.Text()); strings.HasPrefix(line, s.Issuer+"/auth?") {
				userDone <- testoidc.CompleteBrowser(context.Background(), line, "dave")
				break
			}
		}
		_, _ = io.Copy(io.Discard, pr)
	}()
	noBrowser := func(string) error { return errors.New("xdg-open: not found") }
	creds, err := WebLogin(context.Background(), client, noBrowser, pw)
	pw.Close()
	if err != nil {
		t.Fatal(err)
	}
	if err := <-userDone; err != nil {
		t.Fatal(err)
	}
	if creds.Subject != "dave" {
		t.Errorf("logged in as %q, want dave", creds.Subject)
	}
}

func TestWebLoginCancel(t *testing.T) {
	t.Parallel()
	s := testoidc.Start(t, testoidc.Options{})
	client := discover(t, s)
	ctx, cancel := context.WithCancel(context.Background())
	_, err := WebLogin(ctx, client, func(string) error { cancel(); return nil }, io.Discard)
	if err == nil || !strings.Contains(err.Error(), "login cancelled") {
		t.Fatalf("err = %v, want login cancelled", err)
	}
}

func TestDiscover(t *testing.T) {
	t.Parallel()
	s := testoidc.Start(t, testoidc.Options{})
	iss, err := Discover(context.Background(), s.Issuer)
	if err != nil {
		t.Fatal(err)
	}
	if iss.DeviceAuthURL == "" || iss.RevocationURL == "" || !slices.Contains(iss.CodeChallengeMethod, "S256") {
		t.Errorf("discovered %+v", iss)
	}
	for _, tc := range []struct{ issuer, want string }{
		{"", "--issuer"},
		{"ftp://x", "not an http(s) URL"},
		{s.Issuer + "/", "pass exactly that as --issuer"},
		{s.Issuer + "/nothing-here", "check the issuer URL"},
		// Plain http only where nothing crosses a network.
		{"http://192.0.2.1", "plain http"},
		{"http://login.example.com", "plain http"},
		{"HTTP://192.0.2.1/realms/x", "plain http"},
		{insecureEndpointIssuer(t), `token_endpoint "http://192.0.2.1/token" is not an https URL`},
	} {
		if _, err := Discover(context.Background(), tc.issuer); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Discover(%q) = %v, want an error saying %q", tc.issuer, err, tc.want)
		}
	}
}

func TestParseScopes(t *testing.T) {
	for in, want := range map[string][]string{
		"openid,offline_access": {"openid", "offline_access"},
		"openid offline_access": {"openid", "offline_access"},
		" a, b ,c ":             {"a", "b", "c"},
		"":                      nil,
	} {
		if got := ParseScopes(in); !slices.Equal(got, want) {
			t.Errorf("ParseScopes(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestCanOpenBrowser(t *testing.T) {
	for _, tc := range []struct {
		name string
		env  map[string]string
		want bool
	}{
		{"X11 desktop", map[string]string{"DISPLAY": ":0"}, true},
		{"Wayland desktop", map[string]string{"WAYLAND_DISPLAY": "wayland-0"}, true},
		{"BROWSER set", map[string]string{"BROWSER": "firefox"}, true},
		{"headless", map[string]string{}, false},
		{"over ssh with X forwarding", map[string]string{"DISPLAY": "localhost:10.0", "SSH_CONNECTION": "1 2 3 4"}, false},
		{"over ssh tty", map[string]string{"BROWSER": "lynx", "SSH_TTY": "/dev/pts/1"}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			lookup := func(k string) (string, bool) { v, ok := tc.env[k]; return v, ok }
			if got := CanOpenBrowser(lookup); got != tc.want {
				t.Errorf("CanOpenBrowser = %v, want %v", got, tc.want)
			}
		})
	}
}

func TestPastedToken(t *testing.T) {
	c, err := PastedToken(strings.NewReader("  tm-api-key-123\n"))
	if err != nil || c.AccessToken != "tm-api-key-123" || c.RefreshToken != "" {
		t.Fatalf("PastedToken = %+v, %v", c, err)
	}
	for in, want := range map[string]string{"": "no token on stdin", "a b": "exactly one token", "a\nb": "exactly one token"} {
		if _, err := PastedToken(strings.NewReader(in)); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("PastedToken(%q) = %v, want %q", in, err, want)
		}
	}
}

// insecureEndpointIssuer serves, on loopback, a discovery document whose token endpoint is
// plain http on another machine.
func insecureEndpointIssuer(t *testing.T) string {
	var issuer string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, `{"issuer":%q,"authorization_endpoint":%q,"token_endpoint":"http://192.0.2.1/token"}`, issuer, issuer+"/auth")
	}))
	t.Cleanup(srv.Close)
	issuer = srv.URL
	return issuer
}
