package oauth

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	"golang.org/x/oauth2"

	"github.com/tessel/tessel-proxy/internal/shellquote"
)

// refreshMargin is how long before expiry a stored access token is renewed, so that a tunnel
// opened with it does not die seconds later.
const refreshMargin = time.Minute

// ActiveToken is the token a command uses and where it came from.
type ActiveToken struct {
	Token string
	// Source is the variable that gave the token ("PROXY_TOKEN", "TM_API_KEY"), or
	// SourceKeyring or SourceFile for a token stored by login.
	Source string
	// Credentials are the stored credentials when Source is SourceKeyring or SourceFile.
	Credentials *Credentials
}

// Expiry is when the token stops working: the stored expiry for a token login stored, else
// the exp claim of a JWT (unverified, for display); zero when unknown.
func (a *ActiveToken) Expiry() time.Time {
	if a.Credentials != nil && !a.Credentials.Expiry.IsZero() {
		return a.Credentials.Expiry
	}
	return Inspect(a.Token).Expiry
}

// Resolve picks the token to use: envToken when not empty (PROXY_TOKEN or TM_API_KEY, as
// envSource names; the caller applies their order), else the credentials login stored for
// profile, refreshed first when they expire within a minute. A refresh that rotates the
// refresh token is saved back where the credentials came from. With refresh false, a stored
// token is returned as it is, expired or not.
func Resolve(ctx context.Context, stores Stores, profile, envToken, envSource string, refresh bool) (*ActiveToken, error) {
	if envToken != "" {
		return &ActiveToken{Token: envToken, Source: envSource}, nil
	}
	creds, source, err := stores.Load(profile)
	if err != nil {
		return nil, err
	}
	if refresh && needsRefresh(creds, time.Now()) {
		creds, err = refreshStored(ctx, stores, profile, source, creds, "")
		if err != nil {
			return nil, err
		}
	}
	return &ActiveToken{Token: creds.AccessToken, Source: source, Credentials: creds}, nil
}

// needsRefresh reports whether c's access token expires within a minute of now.
func needsRefresh(c *Credentials, now time.Time) bool {
	return !c.Expiry.IsZero() && c.Expiry.Before(now.Add(refreshMargin))
}

// refreshStored refreshes the credentials of profile and saves the result where they came
// from. The refresh is serialised with every other one of this login, in this process and
// others (see Stores.withRefreshLock): with an issuer that rotates refresh tokens, two
// refreshes with the same one would make the second fail and may revoke the whole grant.
// After taking the lock it loads the credentials again: another process may have refreshed
// them while this one waited, and then what it stored is used.
func refreshStored(ctx context.Context, stores Stores, profile, source string, c *Credentials, refused string) (*Credentials, error) {
	relogin := fmt.Sprintf("run `%s` again", LoginCommand(profile))
	var out *Credentials
	err := stores.withRefreshLock(func() error {
		if again, againSource, err := stores.Load(profile); err == nil {
			c, source = again, againSource
		}
		if !needsRenewal(c, refused, time.Now()) {
			out = c
			return nil
		}
		if c.RefreshToken == "" || c.Issuer == "" || c.ClientID == "" {
			if c.Expiry.Before(time.Now()) || (refused != "" && c.AccessToken == refused) {
				return fmt.Errorf("the stored token expired at %s and cannot be refreshed: %s", c.Expiry.Local().Format(time.RFC1123), relogin)
			}
			out = c
			return nil
		}
		fresh, err := Refresh(ctx, c)
		if err != nil {
			return fmt.Errorf("refresh the stored token: %w; %s", err, relogin)
		}
		if err := stores.Save(profile, source, fresh); err != nil {
			return fmt.Errorf("save the refreshed token: %w", err)
		}
		out = fresh
		return nil
	})
	return out, err
}

// Refresh exchanges c's refresh token for a new access token at c's issuer. The result keeps
// c's refresh token unless the issuer rotated it.
func Refresh(ctx context.Context, c *Credentials) (*Credentials, error) {
	iss, err := Discover(ctx, c.Issuer)
	if err != nil {
		return nil, err
	}
	client := Client{Issuer: iss, ClientID: c.ClientID, Scopes: c.Scopes}
	src := client.config("").TokenSource(withHTTP(ctx), &oauth2.Token{RefreshToken: c.RefreshToken})
	tok, err := src.Token()
	if err != nil {
		return nil, describe(err)
	}
	fresh := client.credentials(tok)
	if fresh.Subject == "" {
		fresh.Subject, fresh.Account = c.Subject, c.Account
	}
	return fresh, nil
}

// Revoke asks the issuer to revoke c's tokens (RFC 7009): the refresh token, which ends the
// grant, and the access token. It returns false, nil when the issuer has no revocation
// endpoint, or when c is a pasted key (no client id: not ours to revoke).
func Revoke(ctx context.Context, c *Credentials) (bool, error) {
	if c.Issuer == "" || c.ClientID == "" {
		return false, nil
	}
	iss, err := Discover(ctx, c.Issuer)
	if err != nil {
		return false, err
	}
	if iss.RevocationURL == "" {
		return false, nil
	}
	for _, t := range []struct{ token, hint string }{
		{c.RefreshToken, "refresh_token"},
		{c.AccessToken, "access_token"},
	} {
		if t.token == "" {
			continue
		}
		form := url.Values{"token": {t.token}, "token_type_hint": {t.hint}, "client_id": {c.ClientID}}
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, iss.RevocationURL, strings.NewReader(form.Encode()))
		if err != nil {
			return false, err
		}
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		resp, err := httpClient().Do(req)
		if err != nil {
			return false, fmt.Errorf("revoke at %s: %w", iss.RevocationURL, err)
		}
		var body struct {
			Error       string `json:"error"`
			Description string `json:"error_description"`
		}
		_ = json.NewDecoder(io.LimitReader(resp.Body, 64<<10)).Decode(&body)
		resp.Body.Close()
		// RFC 7009 §2.2.1: an issuer that cannot revoke a kind of token (many cannot revoke JWT
		// access tokens, which simply expire) says unsupported_token_type.
		if resp.StatusCode != http.StatusOK && body.Error != "unsupported_token_type" {
			msg := resp.Status
			if body.Error != "" {
				msg = body.Error + ": " + body.Description
			}
			return false, fmt.Errorf("revoke the %s at %s: %s", strings.ReplaceAll(t.hint, "_", " "), iss.RevocationURL, msg)
		}
	}
	return true, nil
}

// LoginCommand is the command line that logs in to profile, for messages that say what to do.
func LoginCommand(profile string) string {
	if profile == "" || profile == DefaultProfile {
		return "tessel-proxy login"
	}
	return "tessel-proxy login --profile " + shellquote.Word(profile)
}

// DefaultProfile is the profile used without --profile.
const DefaultProfile = "default"

// Renew is Resolve for a client that holds a token for a long time (run's tunnels): refused
// is the token the proxy just refused, or "". The stored credentials of profile are returned,
// refreshed first when they expire within a minute or when they still hold the refused token
// (revoked, or the issuer's clock is ahead of this machine's). Stored credentials that are no
// longer the refused token were renewed meanwhile, by this process or another, and are
// returned as they are.
func Renew(ctx context.Context, stores Stores, profile, refused string) (*ActiveToken, error) {
	creds, source, err := stores.Load(profile)
	if err != nil {
		return nil, err
	}
	if needsRenewal(creds, refused, time.Now()) {
		creds, err = refreshStored(ctx, stores, profile, source, creds, refused)
		if err != nil {
			return nil, err
		}
	}
	return &ActiveToken{Token: creds.AccessToken, Source: source, Credentials: creds}, nil
}

// needsRenewal reports whether c must be refreshed before use: it expires within a minute of
// now, or it holds the token the proxy refused.
func needsRenewal(c *Credentials, refused string, now time.Time) bool {
	return needsRefresh(c, now) || (refused != "" && c.AccessToken == refused)
}
