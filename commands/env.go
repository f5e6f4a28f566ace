package commands

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"sort"
	"strings"
	"time"

	"github.com/tessel/tessel-proxy/deviceenv"
	"github.com/tessel/tessel-proxy/internal/shellquote"
	"github.com/tessel/tessel-proxy/oauth"
	"github.com/tessel/tessel-proxy/proxyconfig"
	"github.com/urfave/cli/v2"
)

// EnvSetOptions is what `env set` needs.
type EnvSetOptions struct {
	IO        IO
	Device    string   // --device; "" = $TESSEL_DEVICE, else the default device, else local
	Args      []string // KEY=VALUE, KEY=@file, KEY -
	FromFile  string   // --from-file: a dotenv file ("-" = stdin)
	FromLogin bool     // --from-login: store the token in use as PROXY_TOKEN
}

func deviceFlag() *cli.StringFlag {
	return &cli.StringFlag{Name: "device", Aliases: []string{"d"},
		Usage: "device `NAME` (or ssh:// address); default: $TESSEL_DEVICE, else the default device, else local"}
}

func envCommand(io IO) *cli.Command {
	return &cli.Command{
		Name:  "env",
		Usage: "read and change the PROXY_* configuration stored on a device",
		Description: `Each device keeps its configuration in a dotenv file (on this machine:
${XDG_CONFIG_HOME:-$HOME/.config}/tessel-proxy/env). run reads it after the environment:
a variable set in the environment wins over the file, the file over the default.
Every PROXY_* value is checked before anything is written, writes are atomic, and
concurrent env set commands never lose each other's changes.

The device is --device NAME, else $TESSEL_DEVICE, else the default device (see
tessel-proxy device), else this machine.

Examples:
   tessel-proxy env set PROXY_HOST=proxy.example.net PROXY_PORT=8443
   tessel-proxy env set --device pi PROXY_CERT=@proxy-ca.pem
   tessel-proxy env set --device pi --from-login
   tessel-proxy env get PROXY_HOST
   tessel-proxy env list --shell
   tessel-proxy env unset PROXY_TRUSTED`,
		Subcommands: []*cli.Command{
			envSetCommand(io),
			envGetCommand(io),
			envListCommand(io),
			envUnsetCommand(io),
		},
	}
}

func envSetCommand(io IO) *cli.Command {
	return &cli.Command{
		Name:      "set",
		Usage:     "set variables in a device's env file",
		ArgsUsage: "KEY=VALUE... | KEY=@FILE | KEY -",
		Description: `KEY=VALUE   sets KEY to VALUE.
KEY=@FILE   reads the value from FILE on this machine (as curl -d @file does).
KEY -       reads the value from stdin (for secrets, and multi-line PEM text).
A value read from a file or stdin keeps its bytes, except that a single-line value
loses one trailing newline (the one echo adds). To store a value that starts with @,
pass it on stdin.

PROXY_CERT takes PEM text or the path of a PEM file on the device. For a remote device
a path is stored unread, since the file lives there (PEM text is still checked); to
copy a local certificate, use PROXY_CERT=@file.

--from-file F sets every variable of the dotenv file F (- for stdin); arguments win
over it. --from-login stores the token in use (PROXY_TOKEN, TM_API_KEY, else the one
saved by tessel-proxy login) as PROXY_TOKEN. An OAuth access token from login expires
within hours and a device cannot renew it, so --from-login warns about one (and refuses
an expired one): for a device, prefer a long-lived API key (PROXY_TOKEN - < key.txt).

Every PROXY_* value is validated first; if one is wrong nothing is written and the
exit status is 2. Unknown keys are stored; a near miss of a known one (PROXY_PRT)
is warned about.

Examples:
   tessel-proxy env set PROXY_HOST=proxy.example.net PROXY_PORT=8443
   tessel-proxy env set PROXY_LOCAL="10.0.0.0/8 .corp.example localhost"
   tessel-proxy env set --device pi PROXY_CERT=@/etc/ssl/proxy-ca.pem
   tessel-proxy env set --device pi PROXY_CERT=/etc/tessel-proxy/ca.pem
   printf %s "$TOKEN" | tessel-proxy env set --device pi PROXY_TOKEN -
   tessel-proxy env set --device pi --from-login
   tessel-proxy env set --from-file proxy.env`,
		Flags: []cli.Flag{
			deviceFlag(),
			&cli.StringFlag{Name: "from-file", Usage: "set every variable in dotenv `FILE` (- = stdin)", TakesFile: true},
			&cli.BoolFlag{Name: "from-login", Usage: "store the token in use as PROXY_TOKEN"},
		},
		Action: func(c *cli.Context) error {
			args, extra, err := splitInterspersed(c.Args().Slice(), []string{"device", "d", "from-file"}, []string{"from-login"})
			if err != nil {
				return usageError("env set: %v", err)
			}
			o := &EnvSetOptions{IO: io, Device: deviceOf(c, extra), Args: args,
				FromFile: c.String("from-file"), FromLogin: c.Bool("from-login") || extra.bools["from-login"]}
			if v := lastOf(extra.values["from-file"]); v != "" {
				o.FromFile = v
			}
			return runEnvSet(c.Context, o)
		},
	}
}

// deviceOf is the device an env command names with --device or -d, before or after its
// arguments; the last one given wins.
func deviceOf(c *cli.Context, extra interspersed) string {
	if v := lastOf(extra.values["device"], extra.values["d"]); v != "" {
		return v
	}
	return c.String("device")
}

// lastOf is the last value in the last non-empty list, or "".
func lastOf(lists ...[]string) string {
	v := ""
	for _, l := range lists {
		if len(l) > 0 {
			v = l[len(l)-1]
		}
	}
	return v
}

func runEnvSet(ctx context.Context, o *EnvSetOptions) error {
	if len(o.Args) == 0 && o.FromFile == "" && !o.FromLogin {
		return usageError("env set: nothing to set; give KEY=VALUE, KEY=@FILE, KEY -, --from-file FILE or --from-login")
	}
	st, err := openDeviceStore(o.IO, o.Device)
	if err != nil {
		return err
	}
	list, err := deviceenv.ParseAssignments(deviceenv.AssignOptions{Args: o.Args, FromFile: o.FromFile, Stdin: o.IO.In,
		LocalPath: func(p string) (string, error) { return absLocalPath(o.IO, p) }})
	if err != nil {
		return usageError("%v", err)
	}

	tokenWarning := "" // said after the write, which may fail for other reasons
	if o.FromLogin {
		cfg, err := deviceenv.LoadLocal(o.IO.LookupEnv)
		if err != nil {
			return usageError("--from-login: %v", err)
		}
		active, err := activeToken(ctx, o.IO, cfg, profileFromEnv(o.IO), true)
		if errors.Is(err, oauth.ErrNotLoggedIn) {
			return exitCode(ExitFailure, errors.New("--from-login: no token: run `tessel-proxy login` first (or set PROXY_TOKEN)"))
		}
		if err != nil {
			return exitCode(ExitFailure, fmt.Errorf("--from-login: %w", err))
		}
		if exp := active.Expiry(); !exp.IsZero() {
			if !exp.After(time.Now()) {
				return exitCode(ExitFailure, fmt.Errorf("--from-login: the token in use (%s) expired at %s; a device needs a token that works: store a long-lived API key with `tessel-proxy env set%s PROXY_TOKEN - < key.txt`",
					active.Source, exp.UTC().Format(time.RFC3339), deviceArg(o.Device)))
			}
			if time.Until(exp) < shortLivedToken {
				tokenWarning = fmt.Sprintf("warning: the token in use (%s) expires at %s (in %s) and the device cannot renew it: "+
					"tessel-proxy run there fails from then on. For a device, store a long-lived API key instead: "+
					"`tessel-proxy env set%s PROXY_TOKEN - < key.txt`, or log in with it (`tessel-proxy login --with-token < key.txt`) and use --from-login again\n",
					active.Source, exp.UTC().Format(time.RFC3339), roughDuration(time.Until(exp)), deviceArg(o.Device))
			}
		}
		list = append(list, deviceenv.Assignment{Key: proxyconfig.VarToken, Value: active.Token, From: "login (" + active.Source + ")"})
	}

	// Check everything before writing anything.
	checked, err := deviceenv.CheckAssignments(list, st.Remote())
	if err != nil {
		return usageError("%v", err)
	}
	for _, w := range checked.Warnings {
		fmt.Fprintln(o.IO.Err, w)
	}

	err = st.Update(ctx, func(vars map[string]string) error {
		for k, v := range checked.Values {
			vars[k] = v
		}
		return nil
	})
	if err != nil {
		return exitCode(ExitFailure, err)
	}
	fmt.Fprintf(o.IO.Err, "Set %s on %s.\n", strings.Join(checked.Order, ", "), st)
	fmt.Fprint(o.IO.Err, tokenWarning)
	return nil
}

// shortLivedToken is the lifetime under which env set --from-login warns that the token it
// pushes will soon stop working on the device: OAuth access tokens live minutes or hours, API
// keys months.
const shortLivedToken = 30 * 24 * time.Hour

// deviceArg is " --device NAME" for a command line to suggest, or "" for the default device.
func deviceArg(device string) string {
	if device == "" {
		return ""
	}
	return " --device " + shellquote.Word(device)
}

// roughDuration says how long d is, to the minute, in days past two days.
func roughDuration(d time.Duration) string {
	if d >= 48*time.Hour {
		return fmt.Sprintf("%d days", int(d/(24*time.Hour)))
	}
	if d < time.Minute {
		return "under a minute"
	}
	return strings.TrimSuffix(d.Round(time.Minute).String(), "0s")
}

func envGetCommand(io IO) *cli.Command {
	return &cli.Command{
		Name:      "get",
		Usage:     "print one variable from a device's env file",
		ArgsUsage: "KEY",
		Description: `Prints the stored value as is, followed by a newline unless it ends with one.
Tokens are printed too: you asked for them. Exit status 1 when KEY is not set.

Examples:
   tessel-proxy env get PROXY_HOST
   tessel-proxy env get --device pi PROXY_CERT > ca.pem`,
		Flags: []cli.Flag{deviceFlag()},
		Action: func(c *cli.Context) error {
			args, extra, err := splitInterspersed(c.Args().Slice(), []string{"device", "d"}, nil)
			if err != nil || len(args) != 1 {
				return usageError("env get: give one KEY, e.g. tessel-proxy env get PROXY_HOST")
			}
			if err := deviceenv.CheckKey(args[0]); err != nil {
				return usageError("env get: %v", err)
			}
			st, err := openDeviceStore(io, deviceOf(c, extra))
			if err != nil {
				return err
			}
			vars, err := st.Read(c.Context)
			if err != nil {
				return exitCode(ExitFailure, err)
			}
			v, ok := vars[args[0]]
			if !ok {
				return exitCode(ExitFailure, fmt.Errorf("%s is not set on %s", args[0], st))
			}
			if !strings.HasSuffix(v, "\n") {
				v += "\n"
			}
			_, err = io.Out.Write([]byte(v))
			return err
		},
	}
}

func envListCommand(io IO) *cli.Command {
	return &cli.Command{
		Name:  "list",
		Usage: "print the variables in a device's env file",
		Description: `Prints KEY=VALUE lines in dotenv syntax (values quoted where needed), sorted.
PROXY_TOKEN and TM_API_KEY, and the password in PROXY_VIA, are masked unless
--show-secrets is given; --shell leaves them out instead, so that its output can be eval'd safely. Only what the file holds is
shown; tessel-proxy route shows the configuration in effect.

Examples:
   tessel-proxy env list
   tessel-proxy env list --device pi --json
   eval "$(tessel-proxy env list --shell --show-secrets)"`,
		Flags: []cli.Flag{
			deviceFlag(),
			&cli.BoolFlag{Name: "json", Usage: "print a JSON object"},
			&cli.BoolFlag{Name: "shell", Usage: "print export KEY='VALUE' lines for a POSIX shell"},
			&cli.BoolFlag{Name: "show-secrets", Usage: "show PROXY_TOKEN, TM_API_KEY and the PROXY_VIA password"},
		},
		Action: func(c *cli.Context) error {
			args, extra, err := splitInterspersed(c.Args().Slice(), []string{"device", "d"}, []string{"json", "shell", "show-secrets"})
			if err != nil || len(args) != 0 {
				return usageError("env list takes no arguments (see --help)")
			}
			device := deviceOf(c, extra)
			asJSON := c.Bool("json") || extra.bools["json"]
			asShell := c.Bool("shell") || extra.bools["shell"]
			showSecrets := c.Bool("show-secrets") || extra.bools["show-secrets"]
			if asJSON && asShell {
				return usageError("env list: choose one of --json and --shell")
			}
			st, err := openDeviceStore(io, device)
			if err != nil {
				return err
			}
			vars, err := st.Read(c.Context)
			if err != nil {
				return exitCode(ExitFailure, err)
			}
			if len(vars) == 0 {
				fmt.Fprintf(io.Err, "No variables are set on %s; add some with `tessel-proxy env set KEY=VALUE`.\n", st)
			}
			return printEnvList(io, vars, asJSON, asShell, showSecrets)
		},
	}
}

// plainValue is a value `env list` shows unquoted.
var plainValue = regexp.MustCompile(`^[A-Za-z0-9_./:,@%+=-]+$`)

func printEnvList(io IO, vars map[string]string, asJSON, asShell, showSecrets bool) error {
	keys := make([]string, 0, len(vars))
	for k := range vars {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	hidden := false
	if asJSON {
		out := map[string]string{}
		for _, k := range keys {
			out[k] = vars[k]
			if m, masked := proxyconfig.MaskValue(k, vars[k]); masked && !showSecrets {
				out[k], hidden = m, true
			}
		}
		enc := json.NewEncoder(io.Out)
		enc.SetIndent("", "  ")
		if err := enc.Encode(out); err != nil {
			return err
		}
	} else {
		for _, k := range keys {
			v := vars[k]
			m, secret := proxyconfig.MaskValue(k, v)
			secret = secret && !showSecrets
			hidden = hidden || secret
			switch {
			case asShell && secret:
				fmt.Fprintf(io.Out, "# %s is set (hidden; add --show-secrets)\n", k)
			case asShell:
				fmt.Fprintf(io.Out, "export %s=%s\n", k, shellquote.Quote(v))
			case secret:
				fmt.Fprintf(io.Out, "%s=%s\n", k, m)
			case plainValue.MatchString(v):
				fmt.Fprintf(io.Out, "%s=%s\n", k, v)
			default:
				q, err := deviceenv.QuoteValue(v)
				if err != nil {
					q = shellquote.Quote(v)
				}
				fmt.Fprintf(io.Out, "%s=%s\n", k, q)
			}
		}
	}
	if hidden {
		fmt.Fprintln(io.Err, "Secrets are masked; add --show-secrets to show them.")
	}
	return nil
}

func envUnsetCommand(io IO) *cli.Command {
	return &cli.Command{
		Name:      "unset",
		Usage:     "remove variables from a device's env file",
		ArgsUsage: "KEY...",
		Description: `Removes each KEY; run then uses the environment or the default for it.
Keys that are not set are reported and skipped.

Examples:
   tessel-proxy env unset PROXY_TRUSTED
   tessel-proxy env unset --device pi PROXY_TOKEN TM_API_KEY`,
		Flags: []cli.Flag{deviceFlag()},
		Action: func(c *cli.Context) error {
			args, extra, err := splitInterspersed(c.Args().Slice(), []string{"device", "d"}, nil)
			if err != nil {
				return usageError("env unset: %v", err)
			}
			if len(args) == 0 {
				return usageError("env unset: give one or more KEYs, e.g. tessel-proxy env unset PROXY_TRUSTED")
			}
			for _, k := range args {
				if err := deviceenv.CheckKey(k); err != nil {
					return usageError("env unset: %v", err)
				}
			}
			st, err := openDeviceStore(io, deviceOf(c, extra))
			if err != nil {
				return err
			}
			var removed, missing []string
			err = st.Update(c.Context, func(vars map[string]string) error {
				removed, missing = nil, nil
				for _, k := range args {
					if _, ok := vars[k]; ok {
						delete(vars, k)
						removed = append(removed, k)
					} else {
						missing = append(missing, k)
					}
				}
				return nil
			})
			if err != nil {
				return exitCode(ExitFailure, err)
			}
			if len(missing) > 0 {
				fmt.Fprintf(io.Err, "Not set on %s: %s.\n", st, strings.Join(missing, ", "))
			}
			if len(removed) > 0 {
				fmt.Fprintf(io.Err, "Unset %s on %s.\n", strings.Join(removed, ", "), st)
			}
			return nil
		},
	}
}
