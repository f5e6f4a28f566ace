package commands

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"os/exec"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/tessel/tessel-proxy/deviceenv"
	"github.com/tessel/tessel-proxy/proxyclient"
	"github.com/urfave/cli/v2"
)

// Exit codes of `run` for its own failures, as env(1), timeout(1) and nice(1) use them.
const (
	ExitRunFailed     = 125 // configuration, token or proxy
	ExitNotExecutable = 126
	ExitNotFound      = 127
)

// connectTimeout bounds opening the tunnel before the program starts, so that a proxy
// that does not answer gives an error instead of a hang.
const connectTimeout = proxyclient.DefaultHandshakeTimeout + 5*time.Second

// RunOptions is what `run` needs: its streams and environment, and the program to start.
type RunOptions struct {
	IO      IO
	Debug   bool
	Program string
	Args    []string
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

Programs that ignore proxy variables (ssh, most raw-socket tools) connect directly.

Exit status: the program's own; 128+N when a signal N killed it; 125 when run itself
failed (configuration, token, proxy), 126 when PROGRAM is not executable, 127 when it
was not found. Signals sent to run (INT, TERM, HUP, QUIT, USR1, USR2, WINCH) are passed
on to the program; Ctrl-C and the like on a terminal reach it once, from the terminal.

Examples:
   tessel-proxy run -- curl https://example.com/
   tessel-proxy run -- git clone https://github.com/tessel/t2-cli
   tessel-proxy run -- python3 -c 'import urllib.request as u; print(u.urlopen("https://example.com").status)'
   tessel-proxy run --debug -- curl http://192.168.1.20/   # PROXY_LOCAL: connects directly
   tessel-proxy route example.com                            # where would a connection go?`,
		Flags: []cli.Flag{
			&cli.BoolFlag{Name: "debug", Usage: "log routing decisions and tunnel events to stderr (as _PROXY_DBG does)"},
		},
		Action: func(c *cli.Context) error {
			if c.NArg() == 0 {
				return usageError("run: name the program to run: tessel-proxy run [--] PROGRAM [ARGS...]")
			}
			return runRun(c.Context, &RunOptions{
				IO:      io,
				Debug:   c.Bool("debug"),
				Program: c.Args().First(),
				Args:    c.Args().Tail(),
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
	dialer := proxyclient.NewDialer(cfg, token, log)
	defer dialer.Close()

	cctx, cancel := context.WithTimeout(ctx, connectTimeout)
	err = dialer.Connect(cctx)
	cancel()
	if err != nil {
		return fail("%w", hintFor(err, source))
	}

	front, err := proxyclient.ListenFront(dialer, "127.0.0.1:0", log)
	if err != nil {
		return fail("%w", err)
	}
	defer front.Close()

	path, err := exec.LookPath(o.Program)
	if err != nil {
		return programError(o.Program, err)
	}
	cmd := exec.Command(path, o.Args...)
	cmd.Args[0] = o.Program
	cmd.Env = childEnv(os.Environ(), front, cfg.Local.Entries())
	cmd.Stdin, cmd.Stdout, cmd.Stderr = o.IO.In, o.IO.Out, o.IO.Err

	// Register before Start, so that a signal arriving in between is not lost.
	sigs := make(chan os.Signal, 8)
	signal.Notify(sigs, forwardedSignals...)
	defer signal.Stop(sigs)
	if err := cmd.Start(); err != nil {
		return programError(o.Program, err)
	}
	log.Debug("started", "program", o.Program, "pid", cmd.Process.Pid, "front", front.Addr().String())
	waited := make(chan error, 1)
	go func() { waited <- cmd.Wait() }()
	for {
		select {
		case sig := <-sigs:
			if terminalSignal[sig] && inTerminalForeground(o.IO.In, o.IO.Out, o.IO.Err) {
				// The terminal sent it to its whole foreground process group, the
				// program included; a second copy would turn one Ctrl-C into two
				// (a forced quit for programs that stop gracefully on the first).
				continue
			}
			cmd.Process.Signal(sig)
		case <-waited:
			return childStatus(cmd.ProcessState)
		}
	}
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

// programError maps a failure to start the program to the exit status shells use.
func programError(program string, err error) error {
	if errors.Is(err, exec.ErrNotFound) || errors.Is(err, fs.ErrNotExist) {
		return exitCode(ExitNotFound, fmt.Errorf("run: %s: program not found", program))
	}
	return exitCode(ExitNotExecutable, fmt.Errorf("run: %s: cannot execute: %w", program, unwrapExec(err)))
}

func unwrapExec(err error) error {
	var ee *exec.Error
	if errors.As(err, &ee) {
		return ee.Err
	}
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}

// childStatus turns how the program ended into run's own exit status.
func childStatus(st *os.ProcessState) error {
	if ws, ok := st.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
		return exitCode(128+int(ws.Signal()), nil)
	}
	if code := st.ExitCode(); code != 0 {
		return exitCode(code, nil)
	}
	return nil
}

// proxyVars are the variables run sets (or clears) in the program's environment, each
// in upper and lower case: tools disagree on which they read (curl ignores HTTP_PROXY,
// for one).
var proxyVars = []string{"ALL_PROXY", "HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY"}

// childEnv is the program's environment: parent's, without the token and any proxy
// settings of its own, with the front's.
func childEnv(parent []string, front *proxyclient.Front, local []string) []string {
	// PROXY_VIA may hold the upstream proxy's password; the program reaches the
	// upstream through the front, never directly.
	drop := map[string]bool{"PROXY_TOKEN": true, "TM_API_KEY": true, "PROXY_VIA": true, "NODE_USE_ENV_PROXY": true}
	for _, v := range proxyVars {
		drop[v], drop[strings.ToLower(v)] = true, true
	}
	env := make([]string, 0, len(parent)+10)
	for _, kv := range parent {
		k, _, _ := strings.Cut(kv, "=")
		if !drop[k] {
			env = append(env, kv)
		}
	}
	set := map[string]string{
		"ALL_PROXY":   front.URL("socks5h"),
		"HTTP_PROXY":  front.URL("http"),
		"HTTPS_PROXY": front.URL("http"),
	}
	// With PROXY_LOCAL=none nothing is local, loopback included: an empty list, not
	// the conventional "localhost,127.0.0.1", or those would bypass the tunnel.
	if len(local) > 0 {
		set["NO_PROXY"] = strings.Join(local, ",")
	}
	for _, k := range proxyVars {
		if v, ok := set[k]; ok {
			env = append(env, k+"="+v, strings.ToLower(k)+"="+v)
		}
	}
	return append(env, "NODE_USE_ENV_PROXY=1")
}
