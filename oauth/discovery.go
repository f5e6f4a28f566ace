// Package oauth gets, keeps and renews the token tessel-proxy authenticates with: OAuth 2.0
// against an OpenID Connect issuer as a public client (device authorization grant, or
// authorization code with PKCE and a loopback redirect), or an API key pasted by the user; the
// credentials live in the OS keyring, or in a 0600 file only when the user asks for that.
package oauth

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/netip"
	"net/url"
	"strings"
	"time"

	"golang.org/x/oauth2"
)

// Issuer is the part of an issuer's OpenID Connect discovery document that login uses.
type Issuer struct {
	URL                 string   `json:"issuer"`
	AuthorizationURL    string   `json:"authorization_endpoint"`
	TokenURL            string   `json:"token_endpoint"`
	DeviceAuthURL       string   `json:"device_authorization_endpoint"`
	RevocationURL       string   `json:"revocation_endpoint"`
	UserinfoURL         string   `json:"userinfo_endpoint"`
	CodeChallengeMethod []string `json:"code_challenge_methods_supported"`
}

// httpTimeout bounds every request to the issuer, so that a silent server cannot hang login.
const httpTimeout = 30 * time.Second

// httpClient is the client for requests to the issuer.
func httpClient() *http.Client { return &http.Client{Timeout: httpTimeout} }

// Discover fetches issuer + "/.well-known/openid-configuration" and checks that the document
// names the same issuer (OpenID Connect Discovery §4.3), so that a token endpoint can never
// come from somewhere else.
func Discover(ctx context.Context, issuer string) (*Issuer, error) {
	if issuer == "" {
		return nil, errors.New("no issuer: pass --issuer URL or set TESSEL_PROXY_ISSUER")
	}
	u, err := url.Parse(issuer)
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
		return nil, fmt.Errorf("issuer %q is not an http(s) URL", issuer)
	}
	if !secureURL(u) {
		return nil, fmt.Errorf("issuer %q uses plain http, which would carry your tokens unencrypted: use its https URL (http is accepted only on this machine: 127.0.0.1, ::1, localhost)", issuer)
	}
	wellKnown := strings.TrimSuffix(issuer, "/") + "/.well-known/openid-configuration"
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, wellKnown, nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Accept", "application/json")
	resp, err := httpClient().Do(req)
	if err != nil {
		return nil, fmt.Errorf("discover issuer %s: %w", issuer, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return nil, fmt.Errorf("discover issuer %s: %w", issuer, err)
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("discover issuer %s: %s answered %s; check the issuer URL", issuer, wellKnown, resp.Status)
	}
	var iss Issuer
	if err := json.Unmarshal(body, &iss); err != nil {
		return nil, fmt.Errorf("discover issuer %s: %s is not a discovery document: %w", issuer, wellKnown, err)
	}
	if iss.URL != issuer {
		return nil, fmt.Errorf("discover issuer %s: the document names issuer %q; pass exactly that as --issuer", issuer, iss.URL)
	}
	if iss.TokenURL == "" {
		return nil, fmt.Errorf("discover issuer %s: no token_endpoint", issuer)
	}
	for _, e := range []struct{ name, url string }{
		{"authorization_endpoint", iss.AuthorizationURL},
		{"token_endpoint", iss.TokenURL},
		{"device_authorization_endpoint", iss.DeviceAuthURL},
		{"revocation_endpoint", iss.RevocationURL},
	} {
		if e.url == "" {
			continue
		}
		if eu, err := url.Parse(e.url); err != nil || eu.Host == "" || !secureURL(eu) {
			return nil, fmt.Errorf("discover issuer %s: its %s %q is not an https URL; tokens must not travel unencrypted", issuer, e.name, e.url)
		}
	}
	return &iss, nil
}

// secureURL reports whether u is https, or http to this machine (a test or a local issuer),
// where nothing crosses a network.
func secureURL(u *url.URL) bool {
	switch u.Scheme {
	case "https":
		return true
	case "http":
		host := u.Hostname()
		if strings.EqualFold(host, "localhost") {
			return true
		}
		a, err := netip.ParseAddr(host)
		return err == nil && a.IsLoopback()
	}
	return false
}

// Client is an OAuth public client of an issuer: no secret, client_id in the request body.
type Client struct {
	Issuer   *Issuer
	ClientID string
	Scopes   []string
}

// DefaultScopes returns the scopes requested when the user names none: an ID token for the account name and
// a refresh token so that login lasts.
func DefaultScopes() []string { return []string{"openid", "offline_access"} }

// ParseScopes splits a comma- or space-separated scope list.
func ParseScopes(s string) []string {
	return strings.FieldsFunc(s, func(r rune) bool { return r == ',' || r == ' ' || r == '\t' || r == '\n' })
}

func (c Client) config(redirectURL string) *oauth2.Config {
	return &oauth2.Config{
		ClientID: c.ClientID,
		Endpoint: oauth2.Endpoint{
			AuthURL:       c.Issuer.AuthorizationURL,
			TokenURL:      c.Issuer.TokenURL,
			DeviceAuthURL: c.Issuer.DeviceAuthURL,
			AuthStyle:     oauth2.AuthStyleInParams,
		},
		RedirectURL: redirectURL,
		Scopes:      c.Scopes,
	}
}

// withHTTP makes x/oauth2 use a client with a timeout.
func withHTTP(ctx context.Context) context.Context {
	return context.WithValue(ctx, oauth2.HTTPClient, httpClient())
}
