package commands

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/urfave/cli/v2"

	"github.com/tessel/tessel-proxy/internal/hostport"
	"github.com/tessel/tessel-proxy/internal/shellquote"
	"github.com/tessel/tessel-proxy/proxyconfig"
	"github.com/tessel/tessel-proxy/proxyserver"
)

// ServeOptions is everything `serve` needs, filled from flags and the environment.
type ServeOptions struct {
	IO IO

	Dev       bool
	DevDir    string
	Listen    string
	CertFile  string
	KeyFile   string
	SelfSign  bool
	Hostnames []string

	AuthToken      string // from --auth-token or AUTH_HARDCODED; never printed except by --dev
	TokenOnArgv    bool
	AuthTokensFile string
	OIDCIssuer     string
	OIDCAudience   string

	Allow            []netip.Prefix
	NoTLSStreams     bool
	MaxStreams       int
	MaxHandshakes    int
	HandshakeTimeout time.Duration

	FirstByteTimeout       time.Duration
	MaxHandshakesPerSource int
	HandshakeDropStart     int
	HandshakeDropRate      int
	MaxTunnelsPerIdentity  int
	IdentityMemoryMiB      int
	DialTimeout            time.Duration
	ShutdownTimeout        time.Duration

	MetricsListen string
	LogFormat     string

	WSPath           string         // WebSocket tunnels at this path, on --listen and --ws-listen
	WSListen         string         // plain-HTTP WebSocket listener for a TLS-terminating reverse proxy
	WSTrustedProxies []netip.Prefix // peers of WSListen whose X-Forwarded-For is believed
	LogLevel         slog.Level
}

const serveDescription = `Runs the proxy server that tessel-proxy clients tunnel to: TLS on --listen, a token
check on every tunnel, then each stream the client opens is resolved on this machine,
judged against the destination policy, dialed and relayed.

Destination policy: targets that resolve to an address the IANA special-purpose
registries do not list as globally reachable (loopback, private, link-local, CGNAT,
documentation, benchmarking, unique-local, multicast, reserved), a cloud metadata address
or an address of this machine's interfaces are refused, whatever name or numeric spelling
the client used. --allow CIDR (repeatable) opens a range again.

Failed authentication: after 5 failures from one address (IPv6: one /64), its tokens are
checked one per 250 ms, then twice as far apart after each failure, up to one per 8 s; the
log gets its first failure, then one summary line every 10 s.

Tokens: prefer the environment (AUTH_HARDCODED) or a file (--auth-tokens-file) over
--auth-token on the command line, where other users of the machine can read it (ps).
A tokens file has one token a line, or sha256:HEX (the token's SHA-256, as sha256sum
prints it) so that the file need not hold the secret; # starts a comment line. The file
is re-read when it changes; a broken edit keeps the previous tokens and is logged.

Limits: a client's tunnel has at most --max-streams streams. One token (or OAuth subject)
has at most --max-tunnels-per-identity tunnels and --identity-memory MiB: each tunnel
reserves 3 MiB of it and each stream 2.6 MiB (the most they can make the server hold: with
the defaults, 80 to 98 streams at once); past it new streams are refused with "limit".
Clients that share one token share these limits. A connection must begin TLS within
--first-byte-timeout and be authenticated within --handshake-timeout; at most
--max-handshakes-per-source of them from one address, and --max-handshakes in all, may be
in their handshake at once, with random drops from --handshake-drop-start on.

WebSocket: clients whose PROXY_HOST is wss://HOST[:PORT]/PATH reach the same --listen
(an HTTP upgrade at --ws-path, default /tunnel), which gets them through front ends that
pass only HTTP. To share port 443 with a website, put a reverse proxy that terminates TLS
in front (nginx, Caddy; configurations in the README) and give it --ws-listen
127.0.0.1:PORT, plain HTTP on loopback; X-Forwarded-For from it (--ws-trust-proxy, default
loopback) names the client in logs and limits.

SIGINT or SIGTERM shuts down gracefully: no new tunnels, a GoAway to every client, and
open streams get --shutdown-timeout to finish. A second signal stops at once.

Examples:

  Try it out on this machine: run it in the background and load the PROXY_* lines it
  prints once listening (logs go to stderr):
    tessel-proxy serve --dev > proxy.env &
    sleep 1; . ./proxy.env
    tessel-proxy run -- curl http://127.0.0.1:8000/   # a server of yours on loopback

  A self-signed certificate, generated on first start; clients trust it with PROXY_CERT:
    AUTH_HARDCODED=$(cat /etc/tessel-proxy/token) tessel-proxy serve --listen :8443 \
      --self-signed --cert /var/lib/tessel-proxy/cert.pem --key /var/lib/tessel-proxy/key.pem \
      --hostname proxy.example.net

  A real certificate and a tokens file, metrics for Prometheus:
    tessel-proxy serve --listen :443 \
      --cert /etc/letsencrypt/live/proxy.example.net/fullchain.pem \
      --key /etc/letsencrypt/live/proxy.example.net/privkey.pem \
      --auth-tokens-file /etc/tessel-proxy/tokens --metrics-listen 127.0.0.1:9090

  Behind nginx or Caddy on a shared 443 (clients: PROXY_HOST=wss://proxy.example.net/tunnel):
    tessel-proxy serve --listen 127.0.0.1:8443 --self-signed --cert cert.pem --key key.pem \
      --auth-tokens-file /etc/tessel-proxy/tokens --ws-listen 127.0.0.1:8080

  OAuth access tokens from your identity provider:
    tessel-proxy serve --cert cert.pem --key key.pem \
      --oidc-issuer https://login.example.net --oidc-audience urn:tessel-proxy`

func serveCommand(io IO) *cli.Command {
	return &cli.Command{
		Name:        "serve",
		Usage:       "run the proxy server that tunnels reach",
		UsageText:   "tessel-proxy serve [--dev] --listen ADDR (--cert F --key F [--self-signed]) (AUTH_HARDCODED=T | --auth-tokens-file F | --oidc-issuer URL --oidc-audience A) [--allow CIDR]...",
		Description: serveDescription,
		Flags: []cli.Flag{
			&cli.BoolFlag{Name: "dev", Usage: "development server: loopback listener, self-signed certificate in --dir, a random token, loopback targets allowed; prints export PROXY_*=... lines on stdout for a shell to eval"},
			&cli.StringFlag{Name: "dir", Usage: "with --dev: the `DIR` that holds the certificate and key", DefaultText: "${XDG_STATE_HOME:-~/.local/state}/tessel-proxy/dev", TakesFile: true},
			&cli.StringFlag{Name: "listen", Usage: "`ADDR` (host:port) to listen on", DefaultText: ":443, with --dev 127.0.0.1:0 (a free port)"},
			&cli.StringFlag{Name: "cert", Usage: "PEM certificate (chain) `FILE`", TakesFile: true},
			&cli.StringFlag{Name: "key", Usage: "PEM private key `FILE`", TakesFile: true},
			&cli.BoolFlag{Name: "self-signed", Usage: "generate an ECDSA certificate and key into --cert and --key when neither exists, and print its path and SHA-256 fingerprint"},
			&cli.StringSliceFlag{Name: "hostname", Usage: "with --self-signed: a `NAME` or IP the certificate is for (repeatable; the listen address is added)"},
			&cli.StringFlag{Name: "auth-token", Usage: "accept this `TOKEN`; visible to other users in ps: prefer the environment variable AUTH_HARDCODED or --auth-tokens-file"},
			&cli.StringFlag{Name: "auth-tokens-file", Usage: "accept the tokens in `FILE` (one token or sha256:HEX a line; re-read when it changes)", TakesFile: true},
			&cli.StringFlag{Name: "oidc-issuer", Usage: "accept OAuth JWT access tokens from this issuer `URL` (with --oidc-audience)"},
			&cli.StringFlag{Name: "oidc-audience", Usage: "the `AUDIENCE` an access token must be for"},
			&cli.StringSliceFlag{Name: "allow", Usage: "allow targets in `CIDR` even though the default policy refuses it (repeatable; an address alone is /32 or /128)"},
			&cli.BoolFlag{Name: "no-tls-streams", Usage: "refuse to make TLS connections for clients (clients with PROXY_TRUSTED=1), so this server never sees their plaintext"},
			&cli.IntFlag{Name: "max-streams", Value: proxyserver.DefaultMaxStreams, Usage: "`N` streams one tunnel may have open at once (each may buffer 1 MiB of upload)"},
			&cli.IntFlag{Name: "max-handshakes", Value: proxyserver.DefaultMaxHandshakes, Usage: "`N` connections that may be in their handshake at once; more are closed at accept"},
			&cli.DurationFlag{Name: "handshake-timeout", Value: proxyserver.DefaultHandshakeTimeout, Usage: "`DURATION` a client has from connecting to being authenticated"},
			&cli.DurationFlag{Name: "first-byte-timeout", Value: proxyserver.DefaultFirstByteTimeout, Usage: "`DURATION` a new connection may stay silent before its TLS handshake begins"},
			&cli.IntFlag{Name: "max-handshakes-per-source", Value: proxyserver.DefaultMaxHandshakesPerSource, Usage: "`N` connections from one address (IPv6: one /64) that may be in their handshake at once; more are closed at accept"},
			&cli.IntFlag{Name: "handshake-drop-start", Usage: "from `N` handshakes in progress on, close new connections at random, more often as --max-handshakes nears (sshd's MaxStartups); --max-handshakes turns it off", DefaultText: "half of --max-handshakes"},
			&cli.IntFlag{Name: "handshake-drop-rate", Value: proxyserver.DefaultHandshakeDropRate, Usage: "the chance in `PERCENT` of such a drop at --handshake-drop-start, rising to 100 at --max-handshakes"},
			&cli.IntFlag{Name: "max-tunnels-per-identity", Value: proxyserver.DefaultMaxTunnelsPerIdentity, Usage: "`N` tunnels one token (or OAuth subject) may have open at once; clients that share a token share it"},
			&cli.IntFlag{Name: "identity-memory", Value: proxyserver.DefaultIdentityMemory >> 20, Usage: "memory budget of one token (or OAuth subject) in `MIB`: streams that would take it further are refused"},
			&cli.DurationFlag{Name: "dial-timeout", Value: proxyserver.DefaultDialTimeout, Usage: "`DURATION` to resolve and connect to a target"},
			&cli.DurationFlag{Name: "shutdown-timeout", Value: 30 * time.Second, Usage: "on SIGINT/SIGTERM, the `DURATION` open streams get to finish"},
			&cli.StringFlag{Name: "metrics-listen", Usage: "serve Prometheus metrics on http://`ADDR`/metrics"},
			&cli.StringFlag{Name: "ws-path", Value: proxyserver.DefaultWebSocketPath, Usage: "take tunnels over WebSocket (clients: PROXY_HOST=wss://HOST/`PATH`) at this path, on --listen and --ws-listen"},
			&cli.StringFlag{Name: "ws-listen", Usage: "also take WebSocket tunnels over plain HTTP on `ADDR`, for a reverse proxy in front that terminates TLS (nginx, Caddy); loopback only unless --ws-listen-insecure"},
			&cli.BoolFlag{Name: "ws-listen-insecure", Usage: "let --ws-listen bind a non-loopback address: its traffic is not encrypted, so only a reverse proxy on a trusted network may reach it"},
			&cli.StringSliceFlag{Name: "ws-trust-proxy", Usage: "believe X-Forwarded-For on --ws-listen from peers in `CIDR` (repeatable)", DefaultText: "127.0.0.0/8, ::1"},
			&cli.StringFlag{Name: "log-format", Value: "text", Usage: "log `FORMAT` on stderr: text or json"},
			&cli.StringFlag{Name: "log-level", Value: "info", Usage: "log `LEVEL`: debug (one line per stream), info, warn or error"},
		},
		Action: func(c *cli.Context) error {
			if c.NArg() > 0 {
				return usageError("serve takes no arguments, got %q", c.Args().First())
			}
			opts, err := serveOptionsFrom(c, io)
			if err != nil {
				return err
			}
			return runServe(c.Context, opts)
		},
	}
}

// serveOptionsFrom reads and checks the flags.
func serveOptionsFrom(c *cli.Context, io IO) (*ServeOptions, error) {
	o := &ServeOptions{
		IO:               io,
		Dev:              c.Bool("dev"),
		DevDir:           c.String("dir"),
		Listen:           c.String("listen"),
		CertFile:         c.String("cert"),
		KeyFile:          c.String("key"),
		SelfSign:         c.Bool("self-signed"),
		Hostnames:        c.StringSlice("hostname"),
		AuthTokensFile:   c.String("auth-tokens-file"),
		OIDCIssuer:       c.String("oidc-issuer"),
		OIDCAudience:     c.String("oidc-audience"),
		NoTLSStreams:     c.Bool("no-tls-streams"),
		MaxStreams:       c.Int("max-streams"),
		MaxHandshakes:    c.Int("max-handshakes"),
		HandshakeTimeout: c.Duration("handshake-timeout"),

		FirstByteTimeout:       c.Duration("first-byte-timeout"),
		MaxHandshakesPerSource: c.Int("max-handshakes-per-source"),
		HandshakeDropStart:     c.Int("handshake-drop-start"),
		HandshakeDropRate:      c.Int("handshake-drop-rate"),
		MaxTunnelsPerIdentity:  c.Int("max-tunnels-per-identity"),
		IdentityMemoryMiB:      c.Int("identity-memory"),
		DialTimeout:            c.Duration("dial-timeout"),
		ShutdownTimeout:        c.Duration("shutdown-timeout"),
		MetricsListen:          c.String("metrics-listen"),
		LogFormat:              c.String("log-format"),
		WSPath:                 c.String("ws-path"),
		WSListen:               c.String("ws-listen"),
	}
	if err := checkWebSocketFlags(c, o); err != nil {
		return nil, err
	}
	if c.IsSet("auth-token") {
		o.AuthToken, o.TokenOnArgv = c.String("auth-token"), true
		if o.AuthToken == "" {
			return nil, usageError("--auth-token is empty")
		}
	} else if v, ok := io.LookupEnv("AUTH_HARDCODED"); ok && v != "" {
		o.AuthToken = v
	}
	for _, s := range c.StringSlice("allow") {
		p, err := parseAllow(s)
		if err != nil {
			return nil, usageError("--allow %q: %v (want a CIDR such as 10.0.0.0/8 or fd00::/8)", s, err)
		}
		o.Allow = append(o.Allow, p)
	}
	switch o.LogFormat {
	case "text", "json":
	default:
		return nil, usageError("--log-format %q: want text or json", o.LogFormat)
	}
	if err := o.LogLevel.UnmarshalText([]byte(c.String("log-level"))); err != nil {
		return nil, usageError("--log-level %q: want debug, info, warn or error", c.String("log-level"))
	}
	switch {
	case o.MaxStreams < 1:
		return nil, usageError("--max-streams %d: want 1 or more", o.MaxStreams)
	case o.MaxHandshakes < 1:
		return nil, usageError("--max-handshakes %d: want 1 or more", o.MaxHandshakes)
	case o.HandshakeTimeout <= 0:
		return nil, usageError("--handshake-timeout %v: want a positive duration such as 10s", o.HandshakeTimeout)
	case o.DialTimeout <= 0:
		return nil, usageError("--dial-timeout %v: want a positive duration such as 10s", o.DialTimeout)
	case o.FirstByteTimeout <= 0:
		return nil, usageError("--first-byte-timeout %v: want a positive duration such as 5s", o.FirstByteTimeout)
	case o.MaxHandshakesPerSource < 1:
		return nil, usageError("--max-handshakes-per-source %d: want 1 or more", o.MaxHandshakesPerSource)
	case c.IsSet("handshake-drop-start") && (o.HandshakeDropStart < 1 || o.HandshakeDropStart > o.MaxHandshakes):
		return nil, usageError("--handshake-drop-start %d: want 1 to --max-handshakes (%d)", o.HandshakeDropStart, o.MaxHandshakes)
	case o.HandshakeDropRate < 1 || o.HandshakeDropRate > 100:
		return nil, usageError("--handshake-drop-rate %d: want a percentage from 1 to 100", o.HandshakeDropRate)
	case o.MaxTunnelsPerIdentity < 1:
		return nil, usageError("--max-tunnels-per-identity %d: want 1 or more", o.MaxTunnelsPerIdentity)
	case o.IdentityMemoryMiB < 1:
		return nil, usageError("--identity-memory %d: want 1 (MiB) or more", o.IdentityMemoryMiB)
	case o.ShutdownTimeout < 0:
		return nil, usageError("--shutdown-timeout %v: want 0 or a positive duration", o.ShutdownTimeout)
	}
	if (o.OIDCIssuer == "") != (o.OIDCAudience == "") {
		return nil, usageError("--oidc-issuer and --oidc-audience go together: give both")
	}
	if (o.CertFile == "") != (o.KeyFile == "") {
		return nil, usageError("--cert and --key go together: give both")
	}
	if len(o.Hostnames) > 0 && !o.SelfSign && !o.Dev {
		return nil, usageError("--hostname names what --self-signed generates: add --self-signed, or drop --hostname")
	}
	for _, a := range []struct{ flag, addr string }{{"--listen", o.Listen}, {"--metrics-listen", o.MetricsListen}, {"--ws-listen", o.WSListen}} {
		if a.addr == "" {
			continue
		}
		if err := checkListenAddr(a.addr); err != nil {
			return nil, usageError("%s %q: %v", a.flag, a.addr, err)
		}
	}

	methods := 0
	for _, set := range []bool{o.AuthToken != "", o.AuthTokensFile != "", o.OIDCIssuer != ""} {
		if set {
			methods++
		}
	}
	if o.Dev {
		if o.AuthTokensFile != "" || o.OIDCIssuer != "" {
			return nil, usageError("--dev makes its own token and prints it: drop --auth-tokens-file and --oidc-issuer, or drop --dev")
		}
		if o.Listen == "" {
			o.Listen = "127.0.0.1:0"
		}
		if o.CertFile == "" {
			dir := o.DevDir
			if dir == "" {
				state, err := proxyconfig.StateDir(io.LookupEnv)
				if err != nil {
					return nil, usageError("--dev needs a directory for its certificate: set HOME or XDG_STATE_HOME, or give --dir")
				}
				dir = filepath.Join(state, "dev")
			}
			o.CertFile, o.KeyFile, o.SelfSign = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem"), true
		}
		if o.AuthToken == "" {
			token, err := randomToken()
			if err != nil {
				return nil, err
			}
			o.AuthToken = token
		}
		// Loopback targets are what one tries a dev server with.
		o.Allow = append(o.Allow, netip.MustParsePrefix("127.0.0.0/8"), netip.MustParsePrefix("::1/128"))
		return o, nil
	}
	if o.DevDir != "" {
		return nil, usageError("--dir goes with --dev")
	}
	if o.Listen == "" {
		o.Listen = ":443"
	}
	if o.CertFile == "" && o.SelfSign {
		return nil, usageError("--self-signed needs --cert FILE --key FILE: the files it generates (or reuses)")
	}
	if o.CertFile == "" {
		return nil, usageError("serve needs a certificate: --cert FILE --key FILE (add --self-signed to generate them), or try --dev")
	}
	switch methods {
	case 0:
		return nil, usageError("serve needs a way to check tokens: AUTH_HARDCODED=TOKEN in the environment, --auth-tokens-file FILE, or --oidc-issuer URL --oidc-audience A")
	case 1:
	default:
		return nil, usageError("choose one way to check tokens: AUTH_HARDCODED/--auth-token, --auth-tokens-file, or --oidc-issuer")
	}
	return o, nil
}

// checkWebSocketFlags reads --ws-path, --ws-trust-proxy and --ws-listen-insecure into o.
// --ws-listen carries tokens and payload unencrypted: it binds loopback only unless told.
func checkWebSocketFlags(c *cli.Context, o *ServeOptions) error {
	if !strings.HasPrefix(o.WSPath, "/") || strings.ContainsAny(o.WSPath, "?# \t") {
		return usageError("--ws-path %q: want a path starting with /, such as /tunnel", o.WSPath)
	}
	for _, s := range c.StringSlice("ws-trust-proxy") {
		p, err := parseAllow(s)
		if err != nil {
			return usageError("--ws-trust-proxy %q: %v (want a CIDR such as 10.0.0.0/8, or an address)", s, err)
		}
		o.WSTrustedProxies = append(o.WSTrustedProxies, p)
	}
	if len(o.WSTrustedProxies) == 0 {
		o.WSTrustedProxies = proxyserver.DefaultTrustedProxies()
	}
	if o.WSListen == "" {
		if c.IsSet("ws-trust-proxy") || c.Bool("ws-listen-insecure") {
			return usageError("--ws-trust-proxy and --ws-listen-insecure go with --ws-listen")
		}
		return nil
	}
	host, _, err := net.SplitHostPort(o.WSListen)
	if err != nil {
		return nil // checkListenAddr says what is wrong
	}
	a, aerr := netip.ParseAddr(host)
	loopback := host == "localhost" || aerr == nil && a.IsLoopback()
	if !loopback && !c.Bool("ws-listen-insecure") {
		return usageError("--ws-listen %q is not a loopback address: tokens and traffic on it are not encrypted. "+
			"Bind 127.0.0.1 with the reverse proxy on this machine, or add --ws-listen-insecure if only the reverse proxy can reach it", o.WSListen)
	}
	return nil
}

// checkListenAddr accepts what net.Listen("tcp", addr) can bind: [HOST]:PORT, PORT a port
// (0: any free port) or a service name.
func checkListenAddr(addr string) error {
	_, port, err := net.SplitHostPort(addr)
	if err != nil {
		return errors.New("want HOST:PORT or :PORT, e.g. 127.0.0.1:8443")
	}
	if _, ok := hostport.ParsePort(port); ok || port == "0" {
		return nil
	}
	if _, err := net.LookupPort("tcp", port); err != nil || port == "" {
		return fmt.Errorf("port %q is neither a number from 0 to 65535 nor a service name", port)
	}
	return nil
}

// parseAllow reads a CIDR, or a lone address as its /32 or /128.
func parseAllow(s string) (netip.Prefix, error) {
	if strings.Contains(s, "/") {
		p, err := netip.ParsePrefix(s)
		if err != nil {
			return netip.Prefix{}, errors.New("not a CIDR")
		}
		return p.Masked(), nil
	}
	a, err := netip.ParseAddr(s)
	if err != nil {
		return netip.Prefix{}, errors.New("not a CIDR or address")
	}
	return netip.PrefixFrom(a, a.BitLen()), nil
}

func randomToken() (string, error) {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("generate a token: %w", err)
	}
	return base64.RawURLEncoding.EncodeToString(b), nil
}

// runServe starts the server and blocks until ctx ends, a signal arrives, or it fails.
func runServe(ctx context.Context, o *ServeOptions) error {
	logger := serveLogger(o)

	ln, err := net.Listen("tcp", o.Listen)
	if err != nil {
		return exitCode(ExitFailure, fmt.Errorf("listen on %s: %w", o.Listen, err))
	}
	defer ln.Close()
	bound := ln.Addr().(*net.TCPAddr).AddrPort()
	clientHost := bound.Addr().Unmap()
	if clientHost.IsUnspecified() {
		clientHost = netip.MustParseAddr("127.0.0.1")
	}

	cert, err := serveCertificate(o, clientHost, logger)
	if err != nil {
		return err
	}
	auth, err := serveAuthenticator(ctx, o, logger)
	if err != nil {
		return err
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	srv, err := proxyserver.New(proxyserver.Config{
		TLS:               &tls.Config{GetCertificate: cert.GetCertificate},
		Authenticator:     auth,
		Policy:            &proxyserver.Policy{Allow: o.Allow},
		DisableTLSStreams: o.NoTLSStreams,
		HandshakeTimeout:  o.HandshakeTimeout,
		DialTimeout:       o.DialTimeout,
		MaxStreams:        o.MaxStreams,
		MaxHandshakes:     o.MaxHandshakes,
		WebSocketPath:     o.WSPath,
		Logger:            logger,

		FirstByteTimeout:       o.FirstByteTimeout,
		MaxHandshakesPerSource: o.MaxHandshakesPerSource,
		HandshakeDropStart:     o.HandshakeDropStart,
		HandshakeDropRate:      o.HandshakeDropRate,
		MaxTunnelsPerIdentity:  o.MaxTunnelsPerIdentity,
		IdentityMemory:         int64(o.IdentityMemoryMiB) << 20,
		Metrics:                reg,
	})
	if err != nil {
		return exitCode(ExitUsage, err)
	}

	if o.MetricsListen != "" {
		mln, err := net.Listen("tcp", o.MetricsListen)
		if err != nil {
			return exitCode(ExitFailure, fmt.Errorf("--metrics-listen %s: %w", o.MetricsListen, err))
		}
		mux := http.NewServeMux()
		mux.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
		metricsSrv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
		go metricsSrv.Serve(mln)
		defer metricsSrv.Close()
		logger.Info("metrics listening", "url", "http://"+mln.Addr().String()+"/metrics")
	}

	// Catch signals before announcing the address, so a script that reads the address and
	// then signals us always gets the graceful path.
	sigs := make(chan os.Signal, 2)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM)
	defer signal.Stop(sigs)

	served := make(chan error, 2)
	serving := 1
	go func() { served <- srv.Serve(ln) }()
	if o.WSListen != "" {
		wln, err := net.Listen("tcp", o.WSListen)
		if err != nil {
			srv.Close()
			<-served
			return exitCode(ExitFailure, fmt.Errorf("--ws-listen %s: %w", o.WSListen, err))
		}
		serving++
		go func() { served <- srv.ServeWebSocket(wln, o.WSTrustedProxies) }()
		logger.Info("WebSocket listening (plain HTTP, for a reverse proxy)", "addr", wln.Addr().String(), "path", o.WSPath, "trusted_proxies", fmt.Sprint(o.WSTrustedProxies))
	}
	logger.Info("listening", "addr", bound.String(), "allow", fmt.Sprint(o.Allow), "tls_streams", !o.NoTLSStreams)
	if o.TokenOnArgv && !o.Dev {
		logger.Warn("the token given with --auth-token is visible to other users of this machine; prefer AUTH_HARDCODED or --auth-tokens-file")
	}
	if o.Dev {
		out := o.IO.Out
		fmt.Fprintf(out, "# tessel-proxy dev server listening; source these lines in the shell that runs the client\n")
		fmt.Fprintf(out, "export PROXY_HOST=%s\n", shellquote.Quote(clientHost.String()))
		fmt.Fprintf(out, "export PROXY_PORT=%s\n", shellquote.Quote(fmt.Sprint(bound.Port())))
		fmt.Fprintf(out, "export PROXY_CERT=%s\n", shellquote.Quote(o.CertFile))
		fmt.Fprintf(out, "export PROXY_TOKEN=%s\n", shellquote.Quote(o.AuthToken))
		fmt.Fprintf(out, "export PROXY_LOCAL=%s\n", shellquote.Quote("none"))
		if f, ok := out.(interface{ Sync() error }); ok {
			_ = f.Sync()
		}
	}

	select {
	case err := <-served:
		srv.Close()
		for serving--; serving > 0; serving-- {
			<-served
		}
		return exitCode(ExitFailure, fmt.Errorf("serve: %w", err))
	case sig := <-sigs:
		logger.Info("shutting down", "signal", sig.String(), "grace", o.ShutdownTimeout)
	case <-ctx.Done():
		logger.Info("shutting down", "grace", o.ShutdownTimeout)
	}
	shutdownCtx, cancel := context.WithTimeout(context.Background(), o.ShutdownTimeout)
	defer cancel()
	go func() {
		select {
		case <-sigs:
			logger.Warn("second signal: closing every tunnel now")
			cancel()
		case <-shutdownCtx.Done():
		}
	}()
	err = srv.Shutdown(shutdownCtx)
	for ; serving > 0; serving-- {
		<-served
	}
	if err != nil {
		logger.Warn("streams still open at the end of the grace period were closed", "err", err)
	} else {
		logger.Info("stopped")
	}
	return nil
}

func serveLogger(o *ServeOptions) *slog.Logger {
	hopts := &slog.HandlerOptions{Level: o.LogLevel}
	if o.LogFormat == "json" {
		return slog.New(slog.NewJSONHandler(o.IO.Err, hopts))
	}
	return slog.New(slog.NewTextHandler(o.IO.Err, hopts))
}

// serveCertificate loads --cert/--key (generating them first with --self-signed), to be
// re-read whenever they change.
func serveCertificate(o *ServeOptions, clientHost netip.Addr, logger *slog.Logger) (*proxyserver.CertFile, error) {
	if o.SelfSign {
		created, err := proxyserver.BootstrapSelfSigned(proxyserver.SelfSignedOptions{
			CertFile: o.CertFile, KeyFile: o.KeyFile, Hostnames: o.Hostnames, Listen: o.Listen,
			Dev: o.Dev, ClientHost: clientHost.String(), Logger: logger})
		if err != nil {
			return nil, exitCode(ExitUsage, fmt.Errorf("--self-signed: %w", err))
		}
		fp, err := proxyserver.CertFingerprint(o.CertFile)
		if err != nil {
			return nil, exitCode(ExitUsage, err)
		}
		verb := "using"
		if created {
			verb = "generated"
		}
		names, _ := proxyserver.CertNames(o.CertFile) // only for the message
		if o.Dev {
			logger.Info(verb+" self-signed certificate", "cert", o.CertFile, "sha256", fp, "names", strings.Join(names, ","))
		} else {
			fmt.Fprintf(o.IO.Out, "%s self-signed certificate %s\nfor %s\nSHA-256 fingerprint %s\nclients trust it with PROXY_CERT=%s\n",
				verb, o.CertFile, strings.Join(names, ", "), fp, o.CertFile)
		}
	}
	cert, err := proxyserver.NewCertFile(o.CertFile, o.KeyFile, logger)
	if err != nil {
		return nil, exitCode(ExitUsage, fmt.Errorf("--cert/--key: %w", err))
	}
	return cert, nil
}

func serveAuthenticator(ctx context.Context, o *ServeOptions, logger *slog.Logger) (proxyserver.Authenticator, error) {
	switch {
	case o.AuthToken != "":
		a, err := proxyserver.NewStaticAuthenticator(o.AuthToken)
		if err != nil {
			return nil, exitCode(ExitUsage, err)
		}
		return a, nil
	case o.AuthTokensFile != "":
		a, err := proxyserver.NewTokensFile(o.AuthTokensFile, logger)
		if err != nil {
			return nil, exitCode(ExitUsage, fmt.Errorf("--auth-tokens-file: %w", err))
		}
		return a, nil
	default:
		a, err := proxyserver.NewOIDCAuthenticator(ctx, o.OIDCIssuer, o.OIDCAudience)
		if err != nil {
			return nil, exitCode(ExitFailure, fmt.Errorf("--oidc-issuer %s: %w", o.OIDCIssuer, err))
		}
		return a, nil
	}
}
