package proxyserver

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
	"golang.org/x/oauth2"
)

// oidcAuthenticator accepts JWT access tokens (RFC 9068 and the many issuers that predate it)
// checked against an OIDC issuer's published keys.
type oidcAuthenticator struct {
	verifier *oidc.IDTokenVerifier
	keys     *keyFetchLimiter
}

// keyRefetchInterval is how often a signature that no known key verifies may make the
// server fetch the issuer's keys again, unless a token has verified since the last fetch.
const keyRefetchInterval = 30 * time.Second

// errKeysFetchedRecently is why a token was refused without fetching the issuer's keys.
var errKeysFetchedRecently = fmt.Errorf("no known key verifies the token's signature, and the issuer's keys were fetched less than %v ago", keyRefetchInterval)

// keyFetchLimiter is the transport of the verifier's key fetches. go-oidc fetches the JWKS
// again whenever no cached key verifies a signature, which is how it follows key rotation,
// but it means that every forged token from a client that has not authenticated would make
// this server fetch the issuer's keys. The limiter lets a fetch through when none happened
// in the last interval, or when a token has verified since the last one (so a rotation
// right after a fetch is still followed at once).
type keyFetchLimiter struct {
	base     http.RoundTripper
	interval time.Duration

	mu       sync.Mutex
	last     time.Time // of the last fetch let through
	verified bool      // a token verified since then
}

// RoundTrip implements http.RoundTripper.
func (l *keyFetchLimiter) RoundTrip(req *http.Request) (*http.Response, error) {
	l.mu.Lock()
	if !l.last.IsZero() && !l.verified && time.Since(l.last) < l.interval {
		l.mu.Unlock()
		return nil, errKeysFetchedRecently
	}
	l.last, l.verified = time.Now(), false
	l.mu.Unlock()
	return l.base.RoundTrip(req)
}

func (l *keyFetchLimiter) noteVerified() {
	l.mu.Lock()
	l.verified = true
	l.mu.Unlock()
}

// signingAlgs are the JWS algorithms accepted. Discovery lists the algorithms of ID tokens
// only, and an issuer may sign access tokens with another, so all asymmetric ones are allowed;
// "none" and the HMAC algorithms never are.
var signingAlgs = []string{
	oidc.RS256, oidc.RS384, oidc.RS512,
	oidc.ES256, oidc.ES384, oidc.ES512,
	oidc.PS256, oidc.PS384, oidc.PS512,
	oidc.EdDSA,
}

// NewOIDCAuthenticator returns an Authenticator that accepts OAuth JWT access tokens issued by
// issuer for audience.
//
// It reads the issuer's discovery document (issuer + "/.well-known/openid-configuration") now,
// and fails when it cannot. Each token's signature is checked against the issuer's JWKS, which
// is fetched again when a token names a key it has not seen, so key rotation needs no restart
// (but not more than once per keyRefetchInterval unless a token has verified since, so that
// forged tokens cannot make the server hammer the issuer).
// iss must equal issuer, aud must contain audience, exp must be in the future and nbf (when
// present) not more than five minutes ahead. Identity.Subject is the token's sub and
// Identity.Expiry its exp. Refusals wrap ErrTokenRefused.
func NewOIDCAuthenticator(ctx context.Context, issuer, audience string) (Authenticator, error) {
	if issuer == "" {
		return nil, errors.New("OIDC issuer is empty: give the issuer URL, e.g. https://login.example.com")
	}
	if audience == "" {
		return nil, errors.New("OIDC audience is empty: give the audience the issuer puts in access tokens for this proxy (--oidc-audience)")
	}
	provider, err := oidc.NewProvider(ctx, issuer)
	if err != nil {
		return nil, fmt.Errorf("OIDC discovery for issuer %s: %w", issuer, err)
	}
	base := http.DefaultTransport
	if c, ok := ctx.Value(oauth2.HTTPClient).(*http.Client); ok && c.Transport != nil {
		base = c.Transport // oidc.ClientContext: the caller's client
	}
	keys := &keyFetchLimiter{base: base, interval: keyRefetchInterval}
	keysCtx := oidc.ClientContext(context.WithoutCancel(ctx), &http.Client{Transport: keys, Timeout: time.Minute})
	verifier := provider.VerifierContext(keysCtx, &oidc.Config{
		ClientID:             audience,
		SupportedSigningAlgs: signingAlgs,
	})
	return &oidcAuthenticator{verifier: verifier, keys: keys}, nil
}

// Authenticate implements Authenticator.
func (a *oidcAuthenticator) Authenticate(ctx context.Context, token string) (Identity, error) {
	tok, err := a.verifier.Verify(ctx, token)
	if err != nil {
		// go-oidc's messages name the failed check and claim values, never the token.
		return Identity{}, fmt.Errorf("%w: %s", ErrTokenRefused, strings.TrimPrefix(err.Error(), "oidc: "))
	}
	a.keys.noteVerified()
	if tok.Subject == "" {
		return Identity{}, fmt.Errorf("%w: token has no subject", ErrTokenRefused)
	}
	return Identity{Subject: tok.Subject, Expiry: tok.Expiry}, nil
}
