package commands

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/tessel/tessel-proxy/deviceenv"
	"github.com/tessel/tessel-proxy/oauth"
	"github.com/urfave/cli/v2"
)

// DefaultClientID is the OAuth client id login uses without --client-id: register a public
// client of this id (no secret) at the issuer.
const DefaultClientID = "tessel-proxy"

// LoginOptions is what `login` needs.
type LoginOptions struct {
	IO              IO
	Issuer          string
	ClientID        string
	Scopes          []string
	Flow            string // "device", "web", "token" (--with-token), or "" to choose
	Profile         string
	InsecureStorage bool
	// OpenBrowser shows a URL in a browser; nil: $BROWSER, else the desktop's browser.
	OpenBrowser func(url string) error
}

func profileFlag() *cli.StringFlag {
	return &cli.StringFlag{Name: "profile", Usage: "keep several logins apart (accounts or servers) under `NAME` (env TESSEL_PROXY_PROFILE)", DefaultText: oauth.DefaultProfile}
}

func profileOf(c *cli.Context, io IO) string {
	if p := c.String("profile"); p != "" {
		return p
	}
	return profileFromEnv(io)
}

func loginCommand(io IO) *cli.Command {
	return &cli.Command{
		Name:      "login",
		Usage:     "get a token through OAuth 2.0 and keep it in the OS keyring",
		UsageText: "tessel-proxy login [--issuer URL] [--client-id ID] [--scopes a,b,c] [--device|--web|--with-token] [--profile NAME] [--insecure-storage]",
		Description: `Signs in at an OpenID Connect issuer as a public client (no client secret) and
keeps the access and refresh tokens in the OS keyring. run, route and env set
--from-login use that token when neither PROXY_TOKEN nor TM_API_KEY is set, and
refresh it when it expires.

Flows:
   --device      shows a one-time code and an address: enter the code in a browser on
                 any device (works over SSH and without a display).
   --web         opens a browser on this machine (authorization code with PKCE,
                 redirected to http://127.0.0.1:PORT/callback).
   (neither)     --web on a desktop session, --device otherwise (and over SSH).
   --with-token  reads an API key from stdin instead of signing in; nothing to refresh,
                 which suits devices.

Without a keyring (a headless Linux box: no Secret Service on the session D-Bus) login
fails and says what to start; --insecure-storage keeps the token in a file of mode 0600
(credentials.json in the config directory) instead.

A self-hosted issuer (Keycloak, Authentik, Dex, ...) needs a public client with id
tessel-proxy (or --client-id): token endpoint auth method none; grants device code,
authorization code with PKCE (S256) and refresh token; redirect URI
http://127.0.0.1/callback on any port (RFC 8252); JWT access tokens with an audience
the proxy checks, e.g. urn:tessel-proxy (tessel-proxy serve --oidc-issuer URL
--oidc-audience urn:tessel-proxy).

Examples:
   tessel-proxy login --issuer https://login.example.com
   TESSEL_PROXY_ISSUER=https://login.example.com tessel-proxy login --device
   tessel-proxy login --with-token < key.txt
   tessel-proxy login --issuer https://sso.work.example --profile work
   tessel-proxy auth status`,
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "issuer", Usage: "OpenID Connect issuer `URL`, https (env TESSEL_PROXY_ISSUER)"},
			&cli.StringFlag{Name: "client-id", Usage: "OAuth client `ID` registered at the issuer (env TESSEL_PROXY_CLIENT_ID)", DefaultText: DefaultClientID},
			&cli.StringFlag{Name: "scopes", Usage: "`SCOPES` to request, comma- or space-separated", DefaultText: strings.Join(oauth.DefaultScopes(), ",")},
			&cli.BoolFlag{Name: "device", Usage: "use the device flow: enter a code on any device with a browser"},
			&cli.BoolFlag{Name: "web", Usage: "use the browser on this machine"},
			&cli.BoolFlag{Name: "with-token", Usage: "read an API key from stdin instead of signing in"},
			profileFlag(),
			&cli.BoolFlag{Name: "insecure-storage", Usage: "store the token in a plain-text file (mode 0600) in the config directory instead of the OS keyring"},
		},
		Action: func(c *cli.Context) error {
			if c.NArg() > 0 {
				return usageError("login takes no arguments, got %q", c.Args().First())
			}
			o := &LoginOptions{
				IO:              io,
				Issuer:          c.String("issuer"),
				ClientID:        c.String("client-id"),
				Profile:         profileOf(c, io),
				InsecureStorage: c.Bool("insecure-storage"),
			}
			if o.Issuer == "" {
				o.Issuer = io.Getenv("TESSEL_PROXY_ISSUER")
			}
			if o.ClientID == "" {
				o.ClientID = io.Getenv("TESSEL_PROXY_CLIENT_ID")
			}
			if o.ClientID == "" {
				o.ClientID = DefaultClientID
			}
			if c.IsSet("scopes") {
				if o.Scopes = oauth.ParseScopes(c.String("scopes")); len(o.Scopes) == 0 {
					return usageError("login: --scopes is empty: give a comma- or space-separated list, e.g. openid,offline_access")
				}
			} else {
				o.Scopes = oauth.DefaultScopes()
			}
			var flows []string
			for _, f := range []string{"device", "web", "with-token"} {
				if c.Bool(f) {
					flows = append(flows, "--"+f)
				}
			}
			if len(flows) > 1 {
				return usageError("login: %s exclude each other: pick one", strings.Join(flows, " and "))
			}
			switch {
			case c.Bool("device"):
				o.Flow = "device"
			case c.Bool("web"):
				o.Flow = "web"
			case c.Bool("with-token"):
				o.Flow = "token"
			}
			ctx, stop := signal.NotifyContext(c.Context, os.Interrupt, syscall.SIGTERM)
			defer stop()
			return runLogin(ctx, o)
		},
	}
}

func runLogin(ctx context.Context, o *LoginOptions) error {
	if o.Flow != "token" && o.Issuer == "" {
		return usageError("login: no issuer: pass --issuer URL or set TESSEL_PROXY_ISSUER to the OpenID Connect issuer that serves your proxy")
	}
	stores, err := loginStores(o.IO)
	if err != nil {
		return exitCode(ExitFailure, fmt.Errorf("login: %w", err))
	}
	source := oauth.SourceKeyring
	if o.InsecureStorage {
		source = oauth.SourceFile
	} else if _, err := stores.Keyring.Load(o.Profile); err != nil && !errors.Is(err, oauth.ErrNotLoggedIn) {
		// Find out before the user signs in, not after.
		return exitCode(ExitFailure, fmt.Errorf("login: %w", err))
	}

	var creds *oauth.Credentials
	if o.Flow == "token" {
		if f, ok := o.IO.In.(*os.File); ok {
			if fi, err := f.Stat(); err == nil && fi.Mode()&os.ModeCharDevice != 0 {
				// Reading a terminal until end of input would otherwise look like a hang.
				fmt.Fprintln(o.IO.Err, "Paste the API key, then press Enter and Ctrl-D (or pipe it in: tessel-proxy login --with-token < key.txt):")
			}
		}
		if creds, err = oauth.PastedToken(o.IO.In); err != nil {
			return exitCode(ExitFailure, fmt.Errorf("login: %w", err))
		}
		if creds.Issuer == "" {
			creds.Issuer = o.Issuer
		}
	} else {
		iss, err := oauth.Discover(ctx, o.Issuer)
		if err != nil {
			return exitCode(ExitFailure, fmt.Errorf("login: %w", err))
		}
		client := oauth.Client{Issuer: iss, ClientID: o.ClientID, Scopes: o.Scopes}
		flow := o.Flow
		if flow == "" {
			flow = "device"
			if (oauth.CanOpenBrowser(o.IO.LookupEnv) && iss.AuthorizationURL != "") || iss.DeviceAuthURL == "" {
				flow = "web"
			}
		}
		if flow == "web" {
			open := o.OpenBrowser
			if open == nil {
				open = oauth.BrowserOpener(o.IO.LookupEnv)
			}
			creds, err = oauth.WebLogin(ctx, client, open, o.IO.Err)
		} else {
			creds, err = oauth.DeviceLogin(ctx, client, func(p oauth.DevicePrompt) {
				fmt.Fprintf(o.IO.Err, "First copy your one-time code: %s\n", p.UserCode)
				fmt.Fprintf(o.IO.Err, "Then open this address in a browser on any device and enter the code:\n  %s\n", p.VerificationURI)
				if p.VerificationURIComplete != "" {
					fmt.Fprintf(o.IO.Err, "(or open %s, which has the code filled in)\n", p.VerificationURIComplete)
				}
				fmt.Fprintln(o.IO.Err, "Waiting for approval (Ctrl-C to cancel)...")
			})
		}
		if err != nil {
			return exitCode(ExitFailure, fmt.Errorf("login: %w", err))
		}
	}

	if o.InsecureStorage {
		fmt.Fprintf(o.IO.Err, "warning: storing the token unencrypted in %s (mode 0600): anyone who can read that file, or a backup of it, can use your account\n", stores.File.Path)
	}
	if err := stores.Save(o.Profile, source, creds); err != nil {
		return exitCode(ExitFailure, fmt.Errorf("login: %w", err))
	}
	where := "the OS keyring"
	if source == oauth.SourceFile {
		where = stores.File.Path
	}
	if creds.Account == "" {
		fmt.Fprintf(o.IO.Err, "Stored the API key (profile %s) in %s.\n", o.Profile, where)
		return nil
	}
	at := ""
	if creds.Issuer != "" {
		at = " at " + creds.Issuer
	}
	fmt.Fprintf(o.IO.Err, "Logged in%s as %s (profile %s); token stored in %s.\n", at, creds.Account, o.Profile, where)
	return nil
}

func logoutCommand(io IO) *cli.Command {
	return &cli.Command{
		Name:  "logout",
		Usage: "remove the stored token and revoke it at the issuer",
		Description: "Removes the profile's credentials from the OS keyring (and the --insecure-storage " +
			"file), and asks the issuer to revoke the refresh and access tokens when it has a " +
			"revocation endpoint. PROXY_TOKEN and TM_API_KEY are not touched.",
		Flags: []cli.Flag{profileFlag()},
		Action: func(c *cli.Context) error {
			if c.NArg() > 0 {
				return usageError("logout takes no arguments, got %q", c.Args().First())
			}
			return runLogout(c.Context, io, profileOf(c, io))
		},
	}
}

func runLogout(ctx context.Context, io IO, profile string) error {
	stores, err := loginStores(io)
	if err != nil {
		return exitCode(ExitFailure, fmt.Errorf("logout: %w", err))
	}
	creds, _, err := stores.Load(profile)
	if err != nil {
		return exitCode(ExitFailure, fmt.Errorf("logout: %w", err))
	}
	// Local removal comes first: a user who logs out wants the token gone from this machine
	// even when the issuer cannot be reached.
	if _, err := stores.Delete(profile); err != nil {
		return exitCode(ExitFailure, fmt.Errorf("logout: %w", err))
	}
	rctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	revoked, rerr := oauth.Revoke(rctx, creds)
	switch {
	case rerr != nil:
		fmt.Fprintf(io.Err, "Logged out (profile %s), but the issuer did not revoke the token: %v\n", profile, rerr)
		return exitCode(ExitFailure, fmt.Errorf("logout: token removed from this machine, revocation failed: %w", rerr))
	case revoked:
		fmt.Fprintf(io.Err, "Logged out of %s (profile %s); the issuer revoked the token.\n", creds.Issuer, profile)
	case creds.ClientID != "":
		fmt.Fprintf(io.Err, "Logged out of %s (profile %s); it has no revocation endpoint, so the token stays valid until it expires.\n", creds.Issuer, profile)
	default:
		fmt.Fprintf(io.Err, "Logged out (profile %s); the API key was removed from this machine but stays valid: revoke it where you created it.\n", profile)
	}
	return nil
}

func authCommand(io IO) *cli.Command {
	return &cli.Command{
		Name:  "auth",
		Usage: "show or print the token in use",
		Subcommands: []*cli.Command{
			{
				Name:  "status",
				Usage: "show the account, issuer, token source and expiry",
				Description: "Shows which token `run` would use and where it comes from: PROXY_TOKEN, " +
					"TM_API_KEY (environment or device env file), the keyring or the file written by " +
					"login --insecure-storage. Exits 1 when there is no token, or when it has expired and " +
					"cannot be refreshed.",
				Flags: []cli.Flag{
					profileFlag(),
					&cli.BoolFlag{Name: "json", Usage: "print a JSON object (without the token)"},
				},
				Action: func(c *cli.Context) error {
					return runAuthStatus(c.Context, io, profileOf(c, io), c.Bool("json"))
				},
			},
			{
				Name:  "token",
				Usage: "print the token in use, refreshed first if needed",
				Flags: []cli.Flag{profileFlag()},
				Action: func(c *cli.Context) error {
					return runAuthToken(c.Context, io, profileOf(c, io))
				},
			},
		},
	}
}

// authStatus is `auth status --json`. It never holds the token.
type authStatus struct {
	Profile         string     `json:"profile"`
	Source          string     `json:"source"` // PROXY_TOKEN, TM_API_KEY, keyring or file
	Account         string     `json:"account,omitempty"`
	Subject         string     `json:"subject,omitempty"`
	Issuer          string     `json:"issuer,omitempty"`
	Expiry          *time.Time `json:"expiry,omitempty"`
	Expired         bool       `json:"expired"`
	Refreshable     bool       `json:"refreshable"`
	CredentialsFile string     `json:"credentials_file,omitempty"`
}

func runAuthStatus(ctx context.Context, io IO, profile string, asJSON bool) error {
	cfg, err := deviceenv.LoadLocal(io.LookupEnv)
	if err != nil {
		return usageError("auth status: %v", err)
	}
	active, err := activeToken(ctx, io, cfg, profile, false)
	if err != nil {
		if errors.Is(err, oauth.ErrNotLoggedIn) {
			return notLoggedIn("auth status", profile, "run `"+oauth.LoginCommand(profile)+"`, or set PROXY_TOKEN", err)
		}
		return exitCode(ExitFailure, fmt.Errorf("auth status: %w", err))
	}
	creds := active.Credentials
	if creds == nil {
		creds = oauth.Inspect(active.Token)
	}
	st := authStatus{
		Profile: profile, Source: active.Source, Account: creds.Account, Subject: creds.Subject,
		Issuer: creds.Issuer, Refreshable: creds.RefreshToken != "" && creds.Issuer != "",
	}
	if !creds.Expiry.IsZero() {
		exp := creds.Expiry.UTC()
		st.Expiry = &exp
		st.Expired = time.Now().After(exp)
	}
	if active.Source == oauth.SourceFile {
		if stores, err := loginStores(io); err == nil {
			st.CredentialsFile = stores.File.Path
		}
	}
	// An expired token that nothing will renew is as good as none: say so in the exit status,
	// after the details, so that scripts can test `auth status` alone.
	var unusable error
	if st.Expired && !st.Refreshable {
		fix := "run `" + oauth.LoginCommand(profile) + "` again"
		if active.Credentials == nil {
			fix = "replace " + active.Source + " (it overrides login)"
		}
		unusable = exitCode(ExitFailure, fmt.Errorf("auth status: the token in use (%s) expired at %s: %s", active.Source, st.Expiry.Format(time.RFC3339), fix))
	}
	if asJSON {
		enc := json.NewEncoder(io.Out)
		enc.SetIndent("", "  ")
		if err := enc.Encode(st); err != nil {
			return err
		}
		return unusable
	}
	line := func(k, v string) { fmt.Fprintf(io.Out, "%-9s %s\n", k+":", v) }
	if active.Credentials != nil {
		line("profile", profile)
	}
	account := st.Account
	if account == "" {
		account = "(unknown: the token is not a JWT)"
	}
	line("account", account)
	if st.Issuer != "" {
		line("issuer", st.Issuer)
	}
	switch active.Source {
	case oauth.SourceKeyring:
		line("token", "keyring (stored by login)")
	case oauth.SourceFile:
		line("token", "file "+st.CredentialsFile+" (stored by login --insecure-storage)")
	default:
		line("token", active.Source+" (environment or device env file; overrides login)")
	}
	switch {
	case st.Expiry == nil:
		line("expires", "unknown")
	case st.Expired && st.Refreshable:
		line("expires", fmt.Sprintf("%s (expired; refreshed on next use)", st.Expiry.Format(time.RFC3339)))
	case st.Expired:
		line("expires", fmt.Sprintf("%s (expired)", st.Expiry.Format(time.RFC3339)))
	default:
		line("expires", fmt.Sprintf("%s (in %s)", st.Expiry.Format(time.RFC3339), time.Until(*st.Expiry).Round(time.Second)))
	}
	return unusable
}

// notLoggedIn is the error of a command that found no token: what to do comes first, then,
// when the keyring could not be asked, why it may hold a login that could not be seen.
func notLoggedIn(command, profile, todo string, err error) error {
	msg := fmt.Sprintf("%s: not logged in (profile %s): %s", command, profile, todo)
	var ku *oauth.KeyringUnavailableError
	if errors.As(err, &ku) {
		msg += ". Besides, " + ku.Error()
	}
	return exitCode(ExitFailure, errors.New(msg))
}

func runAuthToken(ctx context.Context, io IO, profile string) error {
	cfg, err := deviceenv.LoadLocal(io.LookupEnv)
	if err != nil {
		return usageError("auth token: %v", err)
	}
	active, err := activeToken(ctx, io, cfg, profile, true)
	if err != nil {
		if errors.Is(err, oauth.ErrNotLoggedIn) {
			return notLoggedIn("auth token", profile, "run `"+oauth.LoginCommand(profile)+"`, or set PROXY_TOKEN", err)
		}
		return exitCode(ExitFailure, fmt.Errorf("auth token: %w", err))
	}
	_, err = fmt.Fprintln(io.Out, active.Token)
	return err
}
