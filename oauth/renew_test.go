package oauth

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/tessel/tessel-proxy/internal/testoidc"
)

// Several users of one login refresh it at the same moment (two `auth token`, a `run` and an
// `env set --from-login`), against an issuer that rotates refresh tokens: each one may be
// used once, and a second use is refused. Every one of them must get a working token: the
// refresh is serialised, and whoever waited uses what the first stored. Each goroutine here
// opens the lock file on its own, as separate processes do.
func TestParallelRefreshesWithOneTimeRefreshTokens(t *testing.T) {
	t.Parallel()
	s := testoidc.Start(t, testoidc.Options{AccessTokenTTL: 15 * time.Second}) // inside the refresh margin
	stores := fileStores(t)
	if err := stores.Save(DefaultProfile, SourceFile, login(t, s, "grace")); err != nil {
		t.Fatal(err)
	}
	const n = 4
	var wg sync.WaitGroup
	errs := make([]error, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, errs[i] = Resolve(context.Background(), stores, DefaultProfile, "", "", true)
		}()
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Errorf("refresh %d of %d at once: %v", i+1, n, err)
		}
	}
	// The chain of refresh tokens is intact: the stored one still works.
	stored, err := stores.File.Load(DefaultProfile)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Refresh(context.Background(), stored); err != nil {
		t.Errorf("the stored refresh token no longer works after the parallel refreshes: %v", err)
	}
}

// A token that the proxy refused although it has not expired by this machine's clock (the
// issuer's clock is ahead, or the token was revoked) is refreshed when the caller names it as
// refused; a token that is no longer the stored one (another process renewed it meanwhile)
// is not refreshed again.
func TestRenewRefusedToken(t *testing.T) {
	t.Parallel()
	s := testoidc.Start(t, testoidc.Options{}) // an hour: far from the refresh margin
	stores := fileStores(t)
	first := login(t, s, "heidi")
	if err := stores.Save(DefaultProfile, SourceFile, first); err != nil {
		t.Fatal(err)
	}
	got, err := Renew(context.Background(), stores, DefaultProfile, first.AccessToken)
	if err != nil {
		t.Fatal(err)
	}
	if got.Token == first.AccessToken {
		t.Fatal("the refused token came back unrefreshed")
	}
	again, err := Renew(context.Background(), stores, DefaultProfile, first.AccessToken)
	if err != nil {
		t.Fatal(err)
	}
	if again.Token != got.Token {
		t.Error("a token refused before the last renewal was renewed again, instead of using the renewed one")
	}
	if plain, err := Renew(context.Background(), stores, DefaultProfile, ""); err != nil || plain.Token != got.Token {
		t.Errorf("Renew with nothing refused = %v, %v; want the stored token", plain, err)
	}
}
