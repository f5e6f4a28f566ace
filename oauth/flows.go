package oauth

import (
	"context"
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"html"
	"io"
	"net"
	"net/http"
	"os/exec"
	"runtime"
	"strings"
	"time"

	"github.com/cli/browser"
	"golang.org/x/oauth2"
)

// DevicePrompt is what the user needs to finish a device-flow login on another device.
type DevicePrompt struct {
	UserCode                string
	VerificationURI         string
	VerificationURIComplete string // may be empty
	Expiry                  time.Time
}

// DeviceLogin runs the device authorization grant (RFC 8628). It calls show with the code and
// address for the user, then polls the token endpoint at the interval the issuer asks for,
// slowing down when told to, until the user approves, denies, the code expires, or ctx is
// cancelled (Ctrl-C).
func DeviceLogin(ctx context.Context, c Client, show func(DevicePrompt)) (*Credentials, error) {
	if c.Issuer.DeviceAuthURL == "" {
		return nil, fmt.Errorf("issuer %s does not offer the device flow (no device_authorization_endpoint): use --web", c.Issuer.URL)
	}
	ctx = withHTTP(ctx)
	cfg := c.config("")
	da, err := cfg.DeviceAuth(ctx)
	if err != nil {
		return nil, fmt.Errorf("start device login at %s: %w", c.Issuer.DeviceAuthURL, describe(err))
	}
	show(DevicePrompt{
		UserCode:                da.UserCode,
		VerificationURI:         da.VerificationURI,
		VerificationURIComplete: da.VerificationURIComplete,
		Expiry:                  da.Expiry,
	})
	tok, err := cfg.DeviceAccessToken(ctx, da)
	if err != nil {
		if errors.Is(err, context.DeadlineExceeded) && !da.Expiry.IsZero() && time.Now().After(da.Expiry) {
			return nil, errors.New("the device code expired before the login was approved: run login again")
		}
		if ctx.Err() != nil {
			return nil, fmt.Errorf("login cancelled: %w", ctx.Err())
		}
		return nil, fmt.Errorf("device login: %w", describe(err))
	}
	return c.credentials(tok), nil
}

// WebLogin runs the authorization code grant with PKCE (S256) and a loopback redirect on
// 127.0.0.1 at a random port (RFC 8252). open is asked to show the authorization URL in a
// browser; the URL is also written to out, so that the user can open it by hand when open
// fails. It returns when the browser comes back with a code (or an error), or ctx ends.
func WebLogin(ctx context.Context, c Client, open func(url string) error, out io.Writer) (*Credentials, error) {
	if c.Issuer.AuthorizationURL == "" {
		return nil, fmt.Errorf("issuer %s has no authorization_endpoint: use --device", c.Issuer.URL)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("listen for the browser's redirect: %w", err)
	}
	redirect := fmt.Sprintf("http://127.0.0.1:%d/callback", l.Addr().(*net.TCPAddr).Port)
	cfg := c.config(redirect)
	state := randomString()
	verifier := oauth2.GenerateVerifier()
	authURL := cfg.AuthCodeURL(state, oauth2.S256ChallengeOption(verifier))

	results := make(chan callback, 1)
	srv := &http.Server{
		ReadHeaderTimeout: 10 * time.Second,
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.URL.Path != "/callback" {
				http.NotFound(w, r)
				return
			}
			res := callbackResult(r.URL.Query(), state, c.Issuer.URL)
			w.Header().Set("Content-Type", "text/html; charset=utf-8")
			if res.err != nil {
				w.WriteHeader(http.StatusBadRequest)
				fmt.Fprintf(w, "<!DOCTYPE html><title>tessel-proxy</title><p>Login failed: %s</p>", html.EscapeString(res.err.Error()))
			} else {
				fmt.Fprint(w, "<!DOCTYPE html><title>tessel-proxy</title><p>Logged in. You can close this tab and return to the terminal.</p>")
			}
			// A forged request (wrong state) must not end the login of the real one.
			if errors.Is(res.err, errStateMismatch) {
				return
			}
			select {
			case results <- res:
			default:
			}
		}),
	}
	serveDone := make(chan struct{})
	go func() {
		defer close(serveDone)
		_ = srv.Serve(l)
	}()
	defer func() {
		shutdownCtx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		_ = srv.Shutdown(shutdownCtx)
		<-serveDone
	}()

	fmt.Fprintf(out, "Opening %s in your browser.\n", c.Issuer.URL)
	if err := open(authURL); err != nil {
		fmt.Fprintf(out, "Could not open a browser (%v).\n", err)
	}
	fmt.Fprintf(out, "If the browser did not open, visit this URL on this machine:\n  %s\n", authURL)

	var res callback
	select {
	case <-ctx.Done():
		return nil, fmt.Errorf("login cancelled: %w", ctx.Err())
	case res = <-results:
	}
	if res.err != nil {
		return nil, res.err
	}
	tok, err := cfg.Exchange(withHTTP(ctx), res.code, oauth2.VerifierOption(verifier))
	if err != nil {
		return nil, fmt.Errorf("exchange the authorization code at %s: %w", c.Issuer.TokenURL, describe(err))
	}
	return c.credentials(tok), nil
}

var errStateMismatch = errors.New("the redirect's state does not match this login (a stale tab, or a forged request)")

type callback struct {
	code string
	err  error
}

// callbackResult checks the redirect's parameters: state (constant-time, against CSRF),
// iss when present (RFC 9207, against mix-up), and error.
func callbackResult(q map[string][]string, state, issuer string) callback {
	get := func(k string) string {
		if v := q[k]; len(v) > 0 {
			return v[0]
		}
		return ""
	}
	if subtle.ConstantTimeCompare([]byte(get("state")), []byte(state)) != 1 {
		return callback{err: errStateMismatch}
	}
	if iss := get("iss"); iss != "" && iss != issuer {
		return callback{err: fmt.Errorf("the redirect came from issuer %q, not %q", iss, issuer)}
	}
	if e := get("error"); e != "" {
		msg := e
		if d := get("error_description"); d != "" {
			msg += ": " + d
		}
		return callback{err: fmt.Errorf("the issuer refused the login: %s", msg)}
	}
	if get("code") == "" {
		return callback{err: errors.New("the redirect carried no authorization code")}
	}
	return callback{code: get("code")}
}

func randomString() string {
	b := make([]byte, 32)
	_, _ = rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
}

// describe turns an OAuth error response into its code and description, without the raw body.
func describe(err error) error {
	var re *oauth2.RetrieveError
	if errors.As(err, &re) && re.ErrorCode != "" {
		if re.ErrorDescription != "" {
			return fmt.Errorf("%s: %s", re.ErrorCode, re.ErrorDescription)
		}
		return errors.New(re.ErrorCode)
	}
	return err
}

func (c Client) credentials(tok *oauth2.Token) *Credentials {
	cr := &Credentials{
		AccessToken:  tok.AccessToken,
		RefreshToken: tok.RefreshToken,
		Expiry:       tok.Expiry,
		Issuer:       c.Issuer.URL,
		ClientID:     c.ClientID,
		Scopes:       c.Scopes,
	}
	// The ID token came straight from the token endpoint over the connection the client
	// opened, which OpenID Connect Core §3.1.3.7 accepts in place of checking its signature;
	// it is only read for the account name to show.
	idToken, _ := tok.Extra("id_token").(string)
	for _, jwt := range []string{idToken, tok.AccessToken} {
		if claims := unverifiedClaims(jwt); claims.Subject != "" {
			cr.Subject, cr.Account = claims.Subject, claims.account()
			break
		}
	}
	return cr
}

// PastedToken makes credentials from an API key the user pasted (login --with-token). Such a
// key cannot be refreshed; when it is a JWT its subject and expiry are shown by auth status.
func PastedToken(r io.Reader) (*Credentials, error) {
	b, err := io.ReadAll(io.LimitReader(r, 64<<10))
	if err != nil {
		return nil, fmt.Errorf("read the token from stdin: %w", err)
	}
	token := strings.TrimSpace(string(b))
	if token == "" {
		return nil, errors.New("no token on stdin: pipe it in, e.g. `tessel-proxy login --with-token < key.txt`")
	}
	if strings.ContainsAny(token, " \t\r\n") {
		return nil, errors.New("the token on stdin contains spaces or several lines: give exactly one token")
	}
	return Inspect(token), nil
}

type jwtClaims struct {
	Subject           string `json:"sub"`
	Issuer            string `json:"iss"`
	Expiry            int64  `json:"exp"`
	Email             string `json:"email"`
	PreferredUsername string `json:"preferred_username"`
	Name              string `json:"name"`
}

func (c jwtClaims) account() string {
	for _, s := range []string{c.Email, c.PreferredUsername, c.Name} {
		if s != "" {
			return s
		}
	}
	return c.Subject
}

// unverifiedClaims reads a JWT's payload for display; it is zero for anything else.
func unverifiedClaims(token string) jwtClaims {
	var c jwtClaims
	parts := strings.Split(token, ".")
	if len(parts) != 3 {
		return c
	}
	b, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		return c
	}
	_ = json.Unmarshal(b, &c)
	return c
}

// CanOpenBrowser reports whether the web flow suits this session, as gh decides: a desktop
// session (DISPLAY or WAYLAND_DISPLAY on Linux, always on macOS and Windows) or a $BROWSER, and
// not over SSH, where a browser would open on the wrong machine.
func CanOpenBrowser(lookup func(string) (string, bool)) bool {
	set := func(k string) bool { v, ok := lookup(k); return ok && v != "" }
	if set("SSH_CONNECTION") || set("SSH_CLIENT") || set("SSH_TTY") {
		return false
	}
	if set("BROWSER") {
		return true
	}
	switch runtime.GOOS {
	case "darwin", "windows":
		return true
	}
	return set("DISPLAY") || set("WAYLAND_DISPLAY")
}

// BrowserOpener returns the function that opens a URL: $BROWSER (a command, split on spaces,
// given the URL as its last argument) when set, else the desktop's default browser. The
// browser is started, not waited for, since a browser that was not already running stays in
// the foreground until it quits.
func BrowserOpener(lookup func(string) (string, bool)) func(url string) error {
	if cmdline, ok := lookup("BROWSER"); ok && strings.TrimSpace(cmdline) != "" {
		return func(url string) error {
			args := strings.Fields(cmdline)
			cmd := exec.Command(args[0], append(args[1:], url)...)
			if err := cmd.Start(); err != nil {
				return fmt.Errorf("$BROWSER: %w", err)
			}
			go func() { _ = cmd.Wait() }()
			return nil
		}
	}
	return browser.OpenURL
}

// Inspect describes a token for display, from its claims when it is a JWT (unverified: the
// issuer or proxy checks it, this only shows what it says). Non-JWT tokens give only the token.
func Inspect(token string) *Credentials {
	c := &Credentials{AccessToken: token}
	if claims := unverifiedClaims(token); claims.Subject != "" {
		c.Subject, c.Account, c.Issuer = claims.Subject, claims.account(), claims.Issuer
		if claims.Expiry > 0 {
			c.Expiry = time.Unix(claims.Expiry, 0)
		}
	}
	return c
}
