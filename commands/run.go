package commands

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/tessel/tessel-proxy/child"
	"github.com/tessel/tessel-proxy/deviceenv"
	"github.com/tessel/tessel-proxy/proxyclient"
	"github.com/tessel/tessel-proxy/transparent"
	"github.com/urfave/cli/v2"
)

// Exit codes of `run` for its own failures, as env(1), timeout(1) and nice(1) use them.
const (
	ExitRunFailed     = child.ExitFailed // configuration, token or proxy
	ExitNotExecutable = child.ExitNotExecutable
	ExitNotFound      = child.ExitNotFound
)

// connectTimeout bounds opening the tunnel before the program starts, so that a proxy
// that does not answer gives an error instead of a hang.
const connectTimeout = proxyclient.DefaultHandshakeTimeout + 5*time.Second

// RunOptions is what `run` needs: its streams and environment, and the program to start.
type RunOptions struct {
	IO          IO
	Debug       bool
	Transparent bool // run the program in namespaces of its own (Linux)
	Program     string
	Args        []string
}

func runCommand(io IO) *cli.Command {
	return &cli.Command{
		Name:      "run",
		Usage:     "run a program with its connections going through the tunnel",
		ArgsUsage: "[--] PROGRAM [ARGS...]",
		Description: `Starts PROGRAM with a local proxy in front of it (SOCKS5 and HTTP on a random
loopback port, guarded by a random per-run password) and points it there through
ALL_PROXY, HTTP_PROXY, HTTPS_PROXY and NO_PROXY (and their lower-case forms), plus
NODE_USE_ENV_PROXY=1. Each connection the program makes through that proxy goes
through one shared TLS tunnel to the proxy server, except hosts in PROXY_LOCAL, which
are connected directly (NO_PROXY lists them, so most programs skip the local proxy for
them). The program's own TLS (https://) travels end to end: the proxy server relays
bytes it cannot read. If the tunnel is lost in the middle of a transfer, the program's
connection is reset, so that it sees an error rather than a short answer; its next
connection opens a new tunnel.

The tunnel is opened before PROGRAM starts, so a wrong token, an unreachable proxy or
an untrusted certificate stops here with one line and exit status 125. PROXY_TOKEN,
TM_API_KEY and PROXY_VIA are removed from the program's environment.

Behind a corporate HTTP proxy, the tunnel's own connection goes through it with CONNECT:
PROXY_VIA=http://[user:password@]host:port, or else the HTTPS_PROXY and NO_PROXY run
was started with (PROXY_VIA=none: never). TLS to the proxy server runs inside, end to end.

Programs that ignore proxy variables (ssh, most raw-socket tools) connect directly,
unless run has --transparent.

` + transparentHelp + `

Exit status: the program's own; 128+N when a signal N killed it; 125 when run itself
failed (configuration, token, proxy), 126 when PROGRAM is not executable, 127 when it
was not found. Signals sent to run (INT, TERM, HUP, QUIT, USR1, USR2, WINCH) are passed
on to the program; Ctrl-C and the like on a terminal reach it once, from the terminal.

Examples:
   tessel-proxy run -- curl https://example.com/
   tessel-proxy run -- git clone https://github.com/tessel/t2-cli
   tessel-proxy run -- python3 -c 'import urllib.request as u; print(u.urlopen("https://example.com").status)'
   tessel-proxy run --debug -- curl http://192.168.1.20/   # PROXY_LOCAL: connects directly
   tessel-proxy run --transparent -- node app.js            # net.connect too
   tessel-proxy route example.com                            # where would a connection go?`,
		Flags: []cli.Flag{
			&cli.BoolFlag{Name: "debug", Usage: "log routing decisions and tunnel events to stderr (as _PROXY_DBG does)"},
			&cli.BoolFlag{Name: "transparent", Usage: "route every TCP connection and DNS query of the program, proxy variables or not (Linux; see below)"},
		},
		Action: func(c *cli.Context) error {
			if c.NArg() == 0 {
				return usageError("run: name the program to run: tessel-proxy run [--] PROGRAM [ARGS...]")
			}
			return runRun(c.Context, &RunOptions{
				IO:          io,
				Debug:       c.Bool("debug"),
				Transparent: c.Bool("transparent"),
				Program:     c.Args().First(),
				Args:        c.Args().Tail(),
			})
		},
	}
}

func runRun(ctx context.Context, o *RunOptions) error {
	fail := func(format string, args ...any) error {
		return exitCode(ExitRunFailed, fmt.Errorf("run: "+format, args...))
	}
	cfg, err := deviceenv.LoadLocal(o.IO.LookupEnv)
	if err != nil {
		return fail("%w", err)
	}
	token, source, err := resolveToken(ctx, o.IO, cfg)
	if err != nil {
		return fail("%w", err)
	}
	if token == "" {
		return fail("no token: run `tessel-proxy login`, or set PROXY_TOKEN")
	}

	level := slog.LevelWarn
	if o.Debug || cfg.Debug {
		level = slog.LevelDebug
	}
	log := slog.New(slog.NewTextHandler(o.IO.Err, &slog.HandlerOptions{Level: level}))
	var dialerOpts []proxyclient.Option
	tokens, err := renewingTokens(o.IO, source)
	if err != nil {
		return fail("%w", err)
	}
	if tokens != nil {
		dialerOpts = append(dialerOpts, proxyclient.WithTokenSource(tokens))
	}
	dialer := proxyclient.NewDialer(withToken(cfg, token), log, dialerOpts...)
	defer dialer.Close()

	// Where transparent mode cannot work, say so before anything else.
	var runner *transparent.Runner
	if o.Transparent {
		if runner, err = newTransparentRunner(dialer, log); err != nil {
			return fail("%w", err)
		}
		defer runner.Close()
	}

	cctx, cancel := context.WithTimeout(ctx, connectTimeout)
	err = dialer.Connect(cctx)
	cancel()
	if err != nil {
		return fail("%w", hintFor(err, source))
	}

	var environ []string
	if o.IO.Environ != nil {
		environ = o.IO.Environ()
	}
	opts := child.Options{
		Program: o.Program,
		Args:    o.Args,
		Stdin:   o.IO.In,
		Stdout:  o.IO.Out,
		Stderr:  o.IO.Err,
	}
	if runner != nil {
		// Every connection is routed anyway, and a proxy on this machine's loopback could
		// not be reached from the program's namespace: no proxy variables.
		opts.Env = child.NoProxyEnv(environ)
		opts.Start = runner.Start
		opts.Started = func(pid int) error {
			log.Debug("started", "program", o.Program, "pid", pid, "transparent", true)
			return nil
		}
	} else {
		front, err := proxyclient.ListenFront(dialer, "127.0.0.1:0", log)
		if err != nil {
			return fail("%w", err)
		}
		defer front.Close()
		opts.Env = child.ProxyEnv(environ, child.Proxy{
			SOCKS:   front.URL("socks5h"),
			HTTP:    front.URL("http"),
			NoProxy: cfg.Local.Entries(),
		})
		opts.Started = func(pid int) error {
			log.Debug("started", "program", o.Program, "pid", pid, "front", front.Addr().String())
			return nil
		}
	}
	status, err := child.Run(ctx, opts)
	if err != nil {
		return exitCode(status, fmt.Errorf("run: %w", err))
	}
	if status != 0 {
		return exitCode(status, nil)
	}
	return nil
}

// hintFor adds what to do next to the errors a user can fix. source names where the
// token came from.
func hintFor(err error, source string) error {
	if errors.Is(err, proxyclient.ErrAuthFailed) {
		if source == "" {
			source = "the keyring"
		}
		return fmt.Errorf("%w (token from %s; run `tessel-proxy login`, or set PROXY_TOKEN to a valid token)", err, source)
	}
	if errors.Is(err, proxyclient.ErrProxyUnreachable) {
		return fmt.Errorf("%w (check PROXY_HOST and PROXY_PORT)", err)
	}
	return err
}
