package oauth

import (
	"context"
	"errors"
	"io"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tessel/tessel-proxy/internal/testoidc"
)

// login signs user in through the browser flow against s.
func login(t *testing.T, s *testoidc.Server, user string) *Credentials {
	t.Helper()
	client := discover(t, s)
	userDone := make(chan error, 1)
	creds, err := WebLogin(context.Background(), client, func(u string) error {
		go func() { userDone <- testoidc.CompleteBrowser(context.Background(), u, user) }()
		return nil
	}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if err := <-userDone; err != nil {
		t.Fatal(err)
	}
	return creds
}

func fileStores(t *testing.T) Stores {
	// The keyring is never reached in these tests: every profile is in the file.
	return Stores{Keyring: Keyring{Service: "tessel-proxy-test-unused"}, File: File{Path: filepath.Join(t.TempDir(), "credentials.json")}}
}

func TestResolvePrefersEnvironment(t *testing.T) {
	stores := fileStores(t)
	if err := stores.File.Save(DefaultProfile, sample); err != nil {
		t.Fatal(err)
	}
	got, err := Resolve(context.Background(), stores, DefaultProfile, "from-env", "PROXY_TOKEN", true)
	if err != nil || got.Token != "from-env" || got.Source != "PROXY_TOKEN" || got.Credentials != nil {
		t.Fatalf("Resolve = %+v, %v", got, err)
	}
	got, err = Resolve(context.Background(), stores, DefaultProfile, "", "", true)
	if err != nil || got.Token != "at-1" || got.Source != SourceFile {
		t.Fatalf("Resolve without env = %+v, %v", got, err)
	}
	_, err = Resolve(context.Background(), stores, "nobody", "", "", true)
	if !errors.Is(err, ErrNotLoggedIn) {
		t.Fatalf("Resolve of an unknown profile: %v", err)
	}
}

// A token close to expiry is refreshed before use; the issuer rotates the refresh token, and
// the rotated one is what is stored, since the old one no longer works.
func TestResolveRefreshesAndStoresRotatedRefreshToken(t *testing.T) {
	t.Parallel()
	s := testoidc.Start(t, testoidc.Options{AccessTokenTTL: 30 * time.Second}) // inside the refresh margin
	stores := fileStores(t)
	first := login(t, s, "erin")
	if err := stores.Save(DefaultProfile, SourceFile, first); err != nil {
		t.Fatal(err)
	}

	got, err := Resolve(context.Background(), stores, DefaultProfile, "", "", true)
	if err != nil {
		t.Fatal(err)
	}
	if got.Token == first.AccessToken {
		t.Error("token about to expire was not refreshed")
	}
	if claims := payload(t, got.Token); claims["sub"] != "erin" || claims["aud"] != testoidc.Audience {
		t.Errorf("refreshed token claims %v", claims)
	}
	stored, err := stores.File.Load(DefaultProfile)
	if err != nil {
		t.Fatal(err)
	}
	if stored.AccessToken != got.Token || stored.RefreshToken == first.RefreshToken || stored.RefreshToken == "" {
		t.Errorf("stored after refresh: access %v, refresh rotated %v", stored.AccessToken == got.Token, stored.RefreshToken != first.RefreshToken)
	}
	if stored.Subject != "erin" {
		t.Errorf("stored subject %q after refresh", stored.Subject)
	}
	if _, err := Refresh(context.Background(), first); err == nil || !strings.Contains(err.Error(), "invalid_grant") {
		t.Errorf("the old refresh token still works after rotation: %v", err)
	}

	// Without refresh (auth status), the stored token is shown as it is.
	again, err := Resolve(context.Background(), stores, DefaultProfile, "", "", false)
	if err != nil || again.Token != stored.AccessToken {
		t.Errorf("Resolve without refresh = %+v, %v", again, err)
	}
}

func TestResolveExpiredWithoutRefreshToken(t *testing.T) {
	stores := fileStores(t)
	expired := &Credentials{AccessToken: "pasted", Expiry: time.Now().Add(-time.Hour)}
	if err := stores.File.Save("work", expired); err != nil {
		t.Fatal(err)
	}
	_, err := Resolve(context.Background(), stores, "work", "", "", true)
	if err == nil || !strings.Contains(err.Error(), "tessel-proxy login --profile work") {
		t.Fatalf("err = %v, want advice to log in again", err)
	}
}

func TestRevoke(t *testing.T) {
	t.Parallel()
	s := testoidc.Start(t, testoidc.Options{})
	creds := login(t, s, "frank")
	revoked, err := Revoke(context.Background(), creds)
	if err != nil || !revoked {
		t.Fatalf("Revoke = %v, %v", revoked, err)
	}
	if _, err := Refresh(context.Background(), creds); err == nil || !strings.Contains(err.Error(), "invalid_grant") {
		t.Errorf("refresh token still works after logout: %v", err)
	}
	// A pasted key, even a JWT naming the issuer, is not this client's to revoke.
	pasted := Inspect(s.ServiceToken(t, ""))
	if pasted.Issuer != s.Issuer {
		t.Fatalf("Inspect read issuer %q", pasted.Issuer)
	}
	if revoked, err := Revoke(context.Background(), pasted); revoked || err != nil {
		t.Errorf("Revoke of a pasted key = %v, %v, want nothing to do", revoked, err)
	}
}
