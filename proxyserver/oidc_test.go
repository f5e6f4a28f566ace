package proxyserver

import (
	"context"
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"

	"github.com/tessel/tessel-proxy/internal/testoidc"
)

// These tests run against a real authorization server (oidc-provider on Node); tokens come
// from its client credentials grant.

func newOIDC(t *testing.T, s *testoidc.Server) Authenticator {
	t.Helper()
	a, err := NewOIDCAuthenticator(context.Background(), s.Issuer, testoidc.Audience)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

// claims decodes a JWT's payload without checking it.
func claims(t *testing.T, token string) map[string]any {
	t.Helper()
	parts := strings.Split(token, ".")
	b, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		t.Fatal(err)
	}
	var c map[string]any
	if err := json.Unmarshal(b, &c); err != nil {
		t.Fatal(err)
	}
	return c
}

// resign signs a token's header and payload with a key the issuer never published.
func resign(t *testing.T, token string) string {
	t.Helper()
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	parts := strings.Split(token, ".")
	digest := sha256.Sum256([]byte(parts[0] + "." + parts[1]))
	sig, err := rsa.SignPKCS1v15(rand.Reader, key, crypto.SHA256, digest[:])
	if err != nil {
		t.Fatal(err)
	}
	return parts[0] + "." + parts[1] + "." + base64.RawURLEncoding.EncodeToString(sig)
}

func assertRefused(t *testing.T, a Authenticator, token, why string) {
	t.Helper()
	id, err := a.Authenticate(context.Background(), token)
	if err == nil {
		t.Fatalf("accepted (subject %q), want refused: %s", id.Subject, why)
	}
	if !errors.Is(err, ErrTokenRefused) {
		t.Errorf("error %v does not wrap ErrTokenRefused", err)
	}
	if strings.Contains(err.Error(), token) || strings.Contains(err.Error(), strings.Split(token, ".")[2]) {
		t.Errorf("error quotes the token: %v", err)
	}
	if !strings.Contains(err.Error(), why) {
		t.Errorf("error %q does not say %q", err, why)
	}
}

func TestOIDCAuthenticator(t *testing.T) {
	t.Parallel()
	s := testoidc.Start(t, testoidc.Options{})
	a := newOIDC(t, s)

	t.Run("accepts a token for the audience", func(t *testing.T) {
		token := s.ServiceToken(t, "")
		id, err := a.Authenticate(context.Background(), token)
		if err != nil {
			t.Fatal(err)
		}
		if id.Subject != "test-service" {
			t.Errorf("Subject = %q, want test-service", id.Subject)
		}
		exp := time.Unix(int64(claims(t, token)["exp"].(float64)), 0)
		if !id.Expiry.Equal(exp) {
			t.Errorf("Expiry = %v, want the token's exp %v", id.Expiry, exp)
		}
	})
	t.Run("refuses another audience", func(t *testing.T) {
		assertRefused(t, a, s.ServiceToken(t, "urn:other-service"), "audience")
	})
	t.Run("refuses a forged signature", func(t *testing.T) {
		assertRefused(t, a, resign(t, s.ServiceToken(t, "")), "signature")
	})
	t.Run("refuses garbage", func(t *testing.T) {
		assertRefused(t, a, "Zm9v.YmFy.YmF6", "malformed")
	})
}

func TestOIDCAuthenticatorRefusesExpiredToken(t *testing.T) {
	t.Parallel()
	s := testoidc.Start(t, testoidc.Options{AccessTokenTTL: time.Second})
	a := newOIDC(t, s)
	token := s.ServiceToken(t, "")
	exp := time.Unix(int64(claims(t, token)["exp"].(float64)), 0)
	time.Sleep(time.Until(exp.Add(1100 * time.Millisecond)))
	assertRefused(t, a, token, "expired")
}

func TestOIDCAuthenticatorRefusesFutureNotBefore(t *testing.T) {
	t.Parallel()
	s := testoidc.Start(t, testoidc.Options{NBFOffset: time.Hour})
	a := newOIDC(t, s)
	token := s.ServiceToken(t, "")
	if _, ok := claims(t, token)["nbf"]; !ok {
		t.Fatal("the test server issued no nbf claim")
	}
	assertRefused(t, a, token, "nbf")
}

func TestOIDCAuthenticatorFollowsKeyRotation(t *testing.T) {
	t.Parallel()
	s := testoidc.Start(t, testoidc.Options{})
	a := newOIDC(t, s)
	old := s.ServiceToken(t, "")
	if _, err := a.Authenticate(context.Background(), old); err != nil {
		t.Fatal(err)
	}

	s.Restart(t) // new signing key; the old one is withdrawn from the JWKS
	rotated := s.ServiceToken(t, "")
	if _, err := a.Authenticate(context.Background(), rotated); err != nil {
		t.Fatalf("token signed with the new key refused: %v", err)
	}
	assertRefused(t, a, old, "signature")
}

func TestOIDCAuthenticatorKeepsKeysAcrossRestart(t *testing.T) {
	t.Parallel()
	keys := filepath.Join(t.TempDir(), "keys.json")
	s := testoidc.Start(t, testoidc.Options{KeysFile: keys})
	a := newOIDC(t, s)
	token := s.ServiceToken(t, "")
	s.Restart(t)
	if _, err := a.Authenticate(context.Background(), token); err != nil {
		t.Fatalf("token refused after an issuer restart with the same key: %v", err)
	}
}

func TestNewOIDCAuthenticatorErrors(t *testing.T) {
	t.Parallel()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dead := "http://" + l.Addr().String()
	l.Close()
	for _, tc := range []struct{ name, issuer, audience, want string }{
		{"no issuer", "", "urn:x", "issuer is empty"},
		{"no audience", "http://127.0.0.1:1", "", "audience is empty"},
		{"issuer down", dead, "urn:x", dead},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := NewOIDCAuthenticator(context.Background(), tc.issuer, tc.audience)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want one naming %q", err, tc.want)
			}
		})
	}
}

// countingTransport counts the requests for anything but the discovery document.
type countingTransport struct {
	mu   sync.Mutex
	keys int
}

func (c *countingTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	if !strings.HasSuffix(req.URL.Path, "/.well-known/openid-configuration") {
		c.mu.Lock()
		c.keys++
		c.mu.Unlock()
	}
	return http.DefaultTransport.RoundTrip(req)
}

func (c *countingTransport) count() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.keys
}

// TestOIDCForgedTokensDoNotHammerTheIssuer: every token whose signature no cached key
// verifies would make go-oidc fetch the issuer's keys again; a client that has not
// authenticated must not be able to turn the server into a JWKS flooder.
func TestOIDCForgedTokensDoNotHammerTheIssuer(t *testing.T) {
	t.Parallel()
	s := testoidc.Start(t, testoidc.Options{})
	transport := &countingTransport{}
	ctx := oidc.ClientContext(context.Background(), &http.Client{Transport: transport})
	a, err := NewOIDCAuthenticator(ctx, s.Issuer, testoidc.Audience)
	if err != nil {
		t.Fatal(err)
	}
	good := s.ServiceToken(t, "")
	if _, err := a.Authenticate(context.Background(), good); err != nil {
		t.Fatal(err)
	}
	forged := resign(t, good)
	for range 20 {
		assertRefused(t, a, forged, "signature")
	}
	// One fetch for the good token's key, one more for the first forged token (a token
	// had verified since the last fetch: it may be a rotation), then none.
	if n := transport.count(); n > 2 {
		t.Errorf("20 forged tokens made %d key fetches, want at most 2", n)
	}
	// A valid token still verifies from the keys already fetched.
	if _, err := a.Authenticate(context.Background(), good); err != nil {
		t.Fatalf("valid token refused while fetches are held back: %v", err)
	}
}
