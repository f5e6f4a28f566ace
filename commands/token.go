package commands

import (
	"context"
	"errors"
	"path/filepath"

	"github.com/tessel/tessel-proxy/oauth"
	"github.com/tessel/tessel-proxy/proxyconfig"
)

// resolveToken is the one function that decides which token a command uses and says where it
// came from. Precedence: PROXY_TOKEN > TM_API_KEY (both already in cfg, from the environment
// or the device env file) > the token stored by `login` for the profile
// ($TESSEL_PROXY_PROFILE, else "default"), refreshed first when it is about to expire. source
// is "PROXY_TOKEN", "TM_API_KEY", "keyring" or "file". With no token anywhere it returns "",
// "", nil: callers that need one say how to get one.
func resolveToken(ctx context.Context, io IO, cfg proxyconfig.Config) (token, source string, err error) {
	active, err := activeToken(ctx, io, cfg, profileFromEnv(io), true)
	if errors.Is(err, oauth.ErrNotLoggedIn) {
		return "", "", nil
	}
	if err != nil {
		return "", "", err
	}
	return active.Token, active.Source, nil
}

// activeToken is resolveToken with the details auth status shows. With refresh false a stored
// token is returned as stored.
func activeToken(ctx context.Context, io IO, cfg proxyconfig.Config, profile string, refresh bool) (*oauth.ActiveToken, error) {
	stores, err := loginStores(io)
	if err != nil {
		return nil, err
	}
	return oauth.Resolve(ctx, stores, profile, cfg.Token, cfg.TokenSource, refresh)
}

// loginStores are the keyring and the --insecure-storage file in the config directory.
func loginStores(io IO) (oauth.Stores, error) {
	dir, err := proxyconfig.ConfigDir(io.LookupEnv)
	if err != nil {
		return oauth.Stores{}, err
	}
	return oauth.Stores{File: oauth.File{Path: filepath.Join(dir, "credentials.json")}}, nil
}

// profileFromEnv is the profile used without --profile.
func profileFromEnv(io IO) string {
	if p := io.Getenv("TESSEL_PROXY_PROFILE"); p != "" {
		return p
	}
	return oauth.DefaultProfile
}

// withToken is cfg with the token resolveToken chose (PROXY_TOKEN, TM_API_KEY or the login
// store's) as the one that authenticates tunnels.
func withToken(cfg proxyconfig.Config, token string) proxyconfig.Config {
	cfg.Token = token
	return cfg
}
