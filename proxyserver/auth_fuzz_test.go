package proxyserver

import (
	"context"
	"encoding/base64"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/tessel/tessel-proxy/internal/testoidc"
)

// FuzzTokensFile loads a fuzzed tokens file (the operator's input) and checks a fuzzed token
// (a client's) against it. Neither may panic; an error never quotes a line (it may be a
// token); a token written alone on a line of an accepted file is accepted.
func FuzzTokensFile(f *testing.F) {
	f.Add("tok-1\n# comment\n\n  tok-2  \nsha256:"+strings.Repeat("ab", 32)+"\n", "tok-2")
	f.Add("sha256:xyz\n", "sha256:xyz")
	f.Add("sha256:"+strings.Repeat("0", 63)+"\n", "x")
	f.Add(strings.Repeat("a", 5000)+"\n", "a")
	f.Add("\x00\xff\r\n", "\x00\xff")
	dir := f.TempDir()
	f.Fuzz(func(t *testing.T, file, token string) {
		path := filepath.Join(dir, "tokens")
		if err := os.WriteFile(path, []byte(file), 0o600); err != nil {
			t.Fatal(err)
		}
		a, err := NewTokensFile(path, nil)
		if err != nil {
			for _, line := range strings.Split(file, "\n") {
				if l := strings.TrimSpace(line); len(l) >= 8 && strings.Contains(err.Error(), l) && !strings.Contains(path, l) {
					t.Fatalf("the error quotes line %q: %v", l, err)
				}
			}
			return
		}
		_, err = a.Authenticate(context.Background(), token)
		if err != nil && !errors.Is(err, ErrTokenRefused) {
			t.Fatalf("Authenticate error %v: want ErrTokenRefused", err)
		}
		for _, line := range strings.Split(file, "\n") {
			l := strings.TrimSpace(line)
			if l == "" || strings.HasPrefix(l, "#") || strings.HasPrefix(l, "sha256:") {
				continue
			}
			if _, err := a.Authenticate(context.Background(), l); err != nil {
				t.Fatalf("token %q listed in the file is refused: %v", l, err)
			}
		}
	})
}

// FuzzOIDCToken sends fuzzed access tokens (what a client puts in its Hello) to an OIDC
// authenticator backed by a real authorization server (oidc-provider on Node). Parsing a
// token must never panic, and whatever verifies is a token the issuer signed for our
// audience.
func FuzzOIDCToken(f *testing.F) {
	s := testoidc.Start(f, testoidc.Options{})
	a, err := NewOIDCAuthenticator(context.Background(), s.Issuer, testoidc.Audience)
	if err != nil {
		f.Fatal(err)
	}
	good := s.ServiceToken(f, "")
	parts := strings.Split(good, ".")
	b64 := base64.RawURLEncoding.EncodeToString
	for _, seed := range []string{
		good,
		parts[0] + "." + parts[1] + ".",
		b64([]byte(`{"alg":"none","typ":"JWT"}`)) + "." + parts[1] + ".",
		b64([]byte(`{"alg":"HS256","typ":"JWT"}`)) + "." + parts[1] + "." + parts[2],
		b64([]byte(`{"alg":"RS256","kid":"../../etc/passwd"}`)) + "." + parts[1] + "." + parts[2],
		parts[0] + "." + b64([]byte(`{"iss":"`+s.Issuer+`","aud":"`+testoidc.Audience+`","exp":1e300}`)) + "." + parts[2],
		"a.b.c", "....", "", "not a jwt",
	} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, token string) {
		id, err := a.Authenticate(context.Background(), token)
		if err != nil {
			return
		}
		if id.Subject == "" {
			t.Fatalf("token %q accepted without a subject", token)
		}
		// What verifies carries the payload of a token the issuer signed.
		// (Compared decoded: base64 lets the last character vary in its unused bits.)
		want, _ := base64.RawURLEncoding.DecodeString(parts[1])
		p := strings.Split(token, ".")
		if len(p) != 3 {
			t.Fatalf("a token of %d parts verified: %q", len(p), token)
		}
		if got, err := base64.RawURLEncoding.DecodeString(p[1]); err != nil || string(got) != string(want) {
			t.Fatalf("a token with another payload verified: %q", token)
		}
	})
}
