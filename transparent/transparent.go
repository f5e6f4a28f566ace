package transparent

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"time"
)

// InitArg is the first argument with which the tessel-proxy binary re-executes itself as
// the namespace's first process; main hands such a run to Init.
const InitArg = "__transparent-init"

// Defaults for the Config fields left zero.
const (
	DefaultDNSTTL   = 10 * time.Second
	DefaultMaxNames = 16384
	DefaultNameIdle = 10 * time.Minute
	DefaultMTU      = 65520
)

// Config is what a transparent run needs from its caller.
type Config struct {
	// Dial connects to host (a name or an IP literal, as the program asked for it) on port,
	// for one connection of the program. A failure resets the program's connection attempt
	// (it sees ECONNREFUSED).
	Dial func(ctx context.Context, host string, port uint16) (net.Conn, error)
	// DialEarly, when set, is Dial that also sends early as the connection's first bytes.
	// A new connection to a target that took one within the last 30 seconds is then
	// accepted at once, and the program's first bytes (what it sends within 3 ms) travel
	// with the dial: one round trip less. Should that dial fail, the program's connection
	// is reset instead of refused.
	DialEarly func(ctx context.Context, host string, port uint16, early []byte) (net.Conn, error)
	// Local reports whether host (a name or an IP literal) is connected directly. Names it
	// accepts are resolved by this machine's resolver; other names never are. Local of
	// "127.0.0.1" opens the gateway's ports onto this machine's loopback.
	Local func(host string) bool
	// Log receives the stack's decisions and failures at debug level; nil discards them.
	Log *slog.Logger

	DNSTTL   time.Duration // TTL of every DNS answer (DefaultDNSTTL)
	MaxNames int           // synthetic names held at most (DefaultMaxNames)
	NameIdle time.Duration // a synthetic name unused this long is forgotten (DefaultNameIdle)
	MTU      int           // the TUN device's MTU (DefaultMTU)
}

func (c Config) withDefaults() Config {
	if c.DNSTTL <= 0 {
		c.DNSTTL = DefaultDNSTTL
	}
	if c.MaxNames <= 0 {
		c.MaxNames = DefaultMaxNames
	}
	if c.NameIdle <= 0 {
		c.NameIdle = DefaultNameIdle
	}
	if c.MTU <= 0 {
		c.MTU = DefaultMTU
	}
	if c.Log == nil {
		c.Log = slog.New(slog.DiscardHandler)
	}
	return c
}

// ErrUnsupported matches (errors.Is) every error that says transparent mode cannot work on
// this machine as it is set up.
var ErrUnsupported = errors.New("transparent mode is not available here")

// UnsupportedError says why transparent mode cannot work here, and what to change.
type UnsupportedError struct {
	Why string // what is missing, e.g. "/dev/net/tun is mode 0600"
	Fix string // what to do, e.g. "sudo chmod 0666 /dev/net/tun"
}

func (e *UnsupportedError) Error() string {
	if e.Fix == "" {
		return "transparent mode: " + e.Why
	}
	return "transparent mode: " + e.Why + "; " + e.Fix
}

// Is makes errors.Is(err, ErrUnsupported) true.
func (e *UnsupportedError) Is(target error) bool { return target == ErrUnsupported }
