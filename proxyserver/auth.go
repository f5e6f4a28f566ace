package proxyserver

import (
	"context"
	"time"
)

// Identity is who a tunnel authenticated as.
type Identity struct {
	Subject string    // for logs; never the token itself
	Expiry  time.Time // zero: never expires; else the server closes the tunnel at Expiry
}

// Authenticator decides whether a token may open a tunnel. Implementations compare in
// constant time and never put the token in an error.
type Authenticator interface {
	Authenticate(ctx context.Context, token string) (Identity, error)
}
