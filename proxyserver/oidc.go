package proxyserver

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/coreos/go-oidc/v3/oidc"
)

// oidcAuthenticator accepts JWT access tokens (RFC 9068 and the many issuers that predate it)
// checked against an OIDC issuer's published keys.
type oidcAuthenticator struct {
	verifier *oidc.IDTokenVerifier
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
// is fetched again when a token names a key it has not seen, so key rotation needs no restart.
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
	verifier := provider.VerifierContext(context.WithoutCancel(ctx), &oidc.Config{
		ClientID:             audience,
		SupportedSigningAlgs: signingAlgs,
	})
	return &oidcAuthenticator{verifier: verifier}, nil
}

// Authenticate implements Authenticator.
func (a *oidcAuthenticator) Authenticate(ctx context.Context, token string) (Identity, error) {
	tok, err := a.verifier.Verify(ctx, token)
	if err != nil {
		// go-oidc's messages name the failed check and claim values, never the token.
		return Identity{}, fmt.Errorf("%w: %s", ErrTokenRefused, strings.TrimPrefix(err.Error(), "oidc: "))
	}
	if tok.Subject == "" {
		return Identity{}, fmt.Errorf("%w: token has no subject", ErrTokenRefused)
	}
	return Identity{Subject: tok.Subject, Expiry: tok.Expiry}, nil
}
