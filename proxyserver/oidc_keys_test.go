package proxyserver

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"

	"github.com/go-jose/go-jose/v4"
)

// testSigningKey is an ES256 key with its kid, and the JWK its issuer publishes.
type testSigningKey struct {
	signer jose.Signer
	public jose.JSONWebKey
}

func newTestSigningKey(t *testing.T, kid string) testSigningKey {
	t.Helper()
	priv, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.ES256, Key: jose.JSONWebKey{Key: priv, KeyID: kid}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	return testSigningKey{signer, jose.JSONWebKey{Key: &priv.PublicKey, KeyID: kid, Algorithm: "ES256", Use: "sig"}}
}

func (k testSigningKey) sign(t *testing.T) string {
	t.Helper()
	jws, err := k.signer.Sign([]byte(`{"sub":"s"}`))
	if err != nil {
		t.Fatal(err)
	}
	s, err := jws.CompactSerialize()
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// Once a verification has fetched the issuer's keys, the next one uses them: a token signed
// with a key the issuer withdrew is refused from the moment a token signed with its successor
// verified. (go-oidc's RemoteKeySet wakes the verifier that waited for a fetch before it
// replaces its cache, so that for a moment a withdrawn key still verifies; the window is too
// short to hit reliably with the real issuer's restart, hence this JWKS of the test's own,
// which rotates keys as fast as the loop asks.)
func TestIssuerKeysRefuseAWithdrawnKeyAtOnce(t *testing.T) {
	var served atomic.Pointer[jose.JSONWebKeySet]
	jwks := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		json.NewEncoder(w).Encode(served.Load())
	}))
	defer jwks.Close()
	keys := newIssuerKeys(jwks.URL, jwks.Client())
	ctx := context.Background()

	prev := newTestSigningKey(t, "k0")
	served.Store(&jose.JSONWebKeySet{Keys: []jose.JSONWebKey{prev.public}})
	prevToken := prev.sign(t)
	if _, err := keys.VerifySignature(ctx, prevToken); err != nil {
		t.Fatal(err)
	}
	for i := 1; i <= 200; i++ {
		next := newTestSigningKey(t, fmt.Sprintf("k%d", i))
		served.Store(&jose.JSONWebKeySet{Keys: []jose.JSONWebKey{next.public}})
		nextToken := next.sign(t)
		if _, err := keys.VerifySignature(ctx, nextToken); err != nil {
			t.Fatalf("rotation %d: the new key's token refused: %v", i, err)
		}
		if _, err := keys.VerifySignature(ctx, prevToken); err == nil {
			t.Fatalf("rotation %d: a token signed with the withdrawn key verified", i)
		}
		prevToken = nextToken
	}
}

// A key set entry this server cannot use is skipped, not a reason to refuse every token.
func TestIssuerKeysSkipUnusableKeys(t *testing.T) {
	k := newTestSigningKey(t, "good")
	pub, err := json.Marshal(k.public)
	if err != nil {
		t.Fatal(err)
	}
	body := `{"keys":[{"kty":"EC","crv":"secp256k1","alg":"ES256K","kid":"k1","x":"AA","y":"AA"},` +
		`{"kty":"OKP","crv":"Ed448","kid":"x448","x":"AA"},` + string(pub) + `]}`
	jwks := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Write([]byte(body))
	}))
	defer jwks.Close()
	if _, err := newIssuerKeys(jwks.URL, jwks.Client()).VerifySignature(context.Background(), k.sign(t)); err != nil {
		t.Fatal(err)
	}
}
