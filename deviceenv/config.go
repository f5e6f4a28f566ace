// Package deviceenv is the one place that knows what a PROXY_* value means: it parses and
// validates the configuration variables, applies their defaults, matches hosts against
// PROXY_LOCAL, and reads and writes the env file of a device (this machine, or one reached
// over ssh). `env set` validation and `run` both call into it, so they can never disagree.
package deviceenv

import (
	"crypto/x509"
	"time"
)

// Lookup returns the value of a variable and whether it is set (os.LookupEnv's shape).
type Lookup func(key string) (string, bool)

// IdleNever is Config.Idle for PROXY_IDLE=Infinity/never: keep the tunnel open.
const IdleNever time.Duration = -1

// Config is the parsed client configuration. The zero value is not useful; use Parse.
type Config struct {
	Host        string         // PROXY_HOST, default "proxy.tessel.io"
	Port        int            // PROXY_PORT, 1..65535, default 443
	Token       string         // PROXY_TOKEN, else TM_API_KEY; "" when neither is set
	TokenSource string         // "PROXY_TOKEN", "TM_API_KEY" or "" (which variable gave Token)
	RootCAs     *x509.CertPool // from PROXY_CERT; nil means the system roots
	Trusted     bool           // PROXY_TRUSTED
	Idle        time.Duration  // PROXY_IDLE; 0 = close when the last stream closes; IdleNever
	Local       LocalList      // PROXY_LOCAL
	Debug       bool           // _PROXY_DBG set to anything
}

// LocalList is a parsed PROXY_LOCAL: the hosts connected directly, never through the tunnel.
type LocalList struct {
	// implementation detail of deviceenv
	entries []localEntry
}

type localEntry struct{}
