package proxyserver

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
	"github.com/go-jose/go-jose/v4"
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

// joseAlgs are signingAlgs as go-jose names them.
var joseAlgs = func() []jose.SignatureAlgorithm {
	out := make([]jose.SignatureAlgorithm, len(signingAlgs))
	for i, a := range signingAlgs {
		out[i] = jose.SignatureAlgorithm(a)
	}
	return out
}()

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
	var discovered struct {
		JWKSURL string `json:"jwks_uri"`
	}
	if err := provider.Claims(&discovered); err != nil || discovered.JWKSURL == "" {
		return nil, fmt.Errorf("OIDC discovery for issuer %s: no jwks_uri (%v)", issuer, err)
	}
	keySet := newIssuerKeys(discovered.JWKSURL, &http.Client{Transport: keys, Timeout: time.Minute})
	verifier := oidc.NewVerifier(issuer, keySet, &oidc.Config{
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

// issuerKeys is the verifier's key set: the issuer's JWKS, fetched again when no cached key
// verifies a signature, which is how key rotation is followed. go-oidc's RemoteKeySet does
// the same but wakes the verification that waited for a fetch before it replaces its cache,
// so that right after a rotation a token signed with the withdrawn key can still verify, and
// one signed with the new key can be refused. Here the cache is replaced before the
// verification that fetched returns.
type issuerKeys struct {
	url    string
	client *http.Client

	fetching sync.Mutex // held for a fetch: one at a time
	mu       sync.Mutex // guards cached
	cached   []jose.JSONWebKey
}

func newIssuerKeys(url string, client *http.Client) *issuerKeys {
	return &issuerKeys{url: url, client: client}
}

// VerifySignature implements oidc.KeySet.
func (k *issuerKeys) VerifySignature(ctx context.Context, jwt string) ([]byte, error) {
	jws, err := jose.ParseSigned(jwt, joseAlgs)
	if err != nil {
		return nil, fmt.Errorf("malformed JWT: %w", err)
	}
	if len(jws.Signatures) != 1 {
		return nil, errors.New("a JWT with more than one signature")
	}
	kid := jws.Signatures[0].Header.KeyID
	k.mu.Lock()
	before := k.cached
	k.mu.Unlock()
	if payload, ok := verifyWithAny(jws, before, kid); ok {
		return payload, nil
	}

	k.fetching.Lock()
	defer k.fetching.Unlock()
	k.mu.Lock()
	current := k.cached
	k.mu.Unlock()
	if !sameKeys(current, before) {
		// Another verification fetched while this one waited: try its keys first.
		if payload, ok := verifyWithAny(jws, current, kid); ok {
			return payload, nil
		}
	}
	fetched, err := k.fetch(ctx)
	if err != nil {
		return nil, fmt.Errorf("fetching the issuer's keys: %w", err)
	}
	k.mu.Lock()
	k.cached = fetched
	k.mu.Unlock()
	if payload, ok := verifyWithAny(jws, fetched, kid); ok {
		return payload, nil
	}
	return nil, errors.New("no key of the issuer verifies the signature")
}

// verifyWithAny verifies jws with the first of keys (with kid, when the token names one) that
// can.
func verifyWithAny(jws *jose.JSONWebSignature, keys []jose.JSONWebKey, kid string) ([]byte, bool) {
	for i := range keys {
		if kid == "" || keys[i].KeyID == kid {
			if payload, err := jws.Verify(&keys[i]); err == nil {
				return payload, true
			}
		}
	}
	return nil, false
}

// sameKeys reports whether a and b are the same fetch's keys.
func sameKeys(a, b []jose.JSONWebKey) bool {
	return len(a) == len(b) && (len(a) == 0 || &a[0] == &b[0])
}

// fetch reads the issuer's JWKS. Keys this server cannot use (an algorithm or key type it does
// not know) are skipped, as RFC 7517 section 5 asks, rather than failing the whole set.
func (k *issuerKeys) fetch(ctx context.Context) ([]jose.JSONWebKey, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, k.url, nil)
	if err != nil {
		return nil, err
	}
	resp, err := k.client.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("%s: %s", k.url, resp.Status)
	}
	var set struct {
		Keys []json.RawMessage `json:"keys"`
	}
	if err := json.Unmarshal(body, &set); err != nil {
		return nil, fmt.Errorf("%s: %w", k.url, err)
	}
	var keys []jose.JSONWebKey
	for _, raw := range set.Keys {
		var meta struct {
			Alg string `json:"alg"`
		}
		if err := json.Unmarshal(raw, &meta); err != nil {
			return nil, fmt.Errorf("%s: %w", k.url, err)
		}
		if meta.Alg != "" && !slices.Contains(joseAlgs, jose.SignatureAlgorithm(meta.Alg)) {
			continue
		}
		var key jose.JSONWebKey
		if err := json.Unmarshal(raw, &key); err != nil {
			if errors.Is(err, jose.ErrUnsupportedKeyType) {
				continue
			}
			return nil, fmt.Errorf("%s: %w", k.url, err)
		}
		keys = append(keys, key)
	}
	return keys, nil
}
