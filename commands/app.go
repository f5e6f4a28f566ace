// Package commands holds the command tree: flags, help text, and a call into a package with an
// options struct. Protocol, OAuth and SSH live in their own packages.
package commands

import (
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/urfave/cli/v2"
)

// IO is what a command reads and writes, so that tests drive commands without a terminal.
type IO struct {
	In        io.Reader
	Out, Err  io.Writer
	LookupEnv func(key string) (string, bool)
	// Environ returns the whole environment, as os.Environ does: what `run` passes on to
	// its program. It must agree with LookupEnv. nil: the program gets no variables but
	// the ones `run` sets.
	Environ func() []string
}

// Getenv returns the value of key, or "" when unset.
func (o IO) Getenv(key string) string {
	v, _ := o.LookupEnv(key)
	return v
}

// Exit codes shared by every command (see README "Exit codes").
const (
	ExitOK      = 0
	ExitFailure = 1
	ExitUsage   = 2
)

// ExitError carries an exit code with the error that caused it. Commands return it (through
// usageError or exitCode) and Main prints the message once and exits with the code.
type ExitError struct {
	Code int
	Err  error // nil: exit silently with Code (the message was already shown)
}

func (e *ExitError) Error() string {
	if e.Err == nil {
		return fmt.Sprintf("exit status %d", e.Code)
	}
	return e.Err.Error()
}

func (e *ExitError) Unwrap() error { return e.Err }

// usageError reports bad usage or bad configuration: exit status 2.
func usageError(format string, args ...any) error {
	return &ExitError{Code: ExitUsage, Err: fmt.Errorf(format, args...)}
}

// exitCode wraps err with an explicit exit code.
func exitCode(code int, err error) error {
	return &ExitError{Code: code, Err: err}
}

// NewApp builds the command tree.
func NewApp(io IO) *cli.App {
	app := &cli.App{
		Name:  "tessel-proxy",
		Usage: "share one authenticated, multiplexed TLS tunnel among a program's connections",
		Description: "tessel-proxy runs any program so that its outgoing TCP connections ride one " +
			"authenticated yamux-over-TLS tunnel to a proxy server, except hosts on the local " +
			"bypass list (PROXY_LOCAL). `serve` is the proxy server, `login` gets a token, `env` " +
			"configures a device, `run` wraps a program.",
		Reader:               io.In,
		Writer:               io.Out,
		ErrWriter:            io.Err,
		EnableBashCompletion: true,
		HideHelpCommand:      true,
		Suggest:              true,
		Commands: []*cli.Command{
			serveCommand(io),
			runCommand(io),
			routeCommand(io),
			loginCommand(io),
			logoutCommand(io),
			authCommand(io),
			deviceCommand(io),
			envCommand(io),
			completionCommand(io),
			manCommand(io),
			versionCommand(io),
		},
		ExitErrHandler: func(*cli.Context, error) {}, // Main maps errors to exit codes
		OnUsageError:   onUsageError,
	}
	setUsageErrors(app.Commands)
	finishApp(app, io)
	return app
}

// setUsageErrors makes a flag parse error in any subcommand exit with status 2.
func setUsageErrors(cmds []*cli.Command) {
	for _, c := range cmds {
		if c.OnUsageError == nil {
			c.OnUsageError = onUsageError
		}
		setUsageErrors(c.Subcommands)
	}
}

// onUsageError gives a flag parse error exit status 2.
func onUsageError(_ *cli.Context, err error, _ bool) error {
	return &ExitError{Code: ExitUsage, Err: err}
}

// Main runs the app with args and returns the process exit status. Errors are printed as one
// line on io.Err, prefixed with the program name.
func Main(io IO, args []string) int {
	err := NewApp(io).Run(args)
	if err == nil {
		return ExitOK
	}
	code := ExitFailure
	var ee *ExitError
	if errors.As(err, &ee) {
		code = ee.Code
		err = ee.Err
	} else if isUsage(err) {
		code = ExitUsage
	}
	if err != nil {
		fmt.Fprintf(io.Err, "tessel-proxy: %s\n", strings.TrimSpace(err.Error()))
	}
	return code
}

// isUsage recognises the urfave/cli errors that mean bad usage but arrive without
// OnUsageError (unknown command, missing required flag).
func isUsage(err error) bool {
	msg := err.Error()
	return strings.Contains(msg, "Required flag") || strings.Contains(msg, "No help topic") ||
		strings.Contains(msg, "flag provided but not defined")
}
