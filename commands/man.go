package commands

import (
	"fmt"
	"os"
	"path/filepath"

	"github.com/tessel/tessel-proxy/man"
	"github.com/tessel/tessel-proxy/proxyconfig"
	"github.com/urfave/cli/v2"
)

// manExitStatus is EXIT STATUS of the manual and of the reference.
var manExitStatus = []man.ExitStatus{
	{Code: fmt.Sprint(ExitOK), Meaning: "success"},
	{Code: fmt.Sprint(ExitFailure), Meaning: "a failure that the command reports"},
	{Code: fmt.Sprint(ExitUsage), Meaning: "bad usage or bad configuration; the message names what"},
	{Code: "run: N", Meaning: "`run` exits with the status of the program it ran"},
	{Code: "run: 128+N", Meaning: "the program was killed by signal N"},
	{Code: "run: 125", Meaning: "`run` itself failed: configuration, proxy or token"},
	{Code: "run: 126", Meaning: "the program was found but could not be executed"},
	{Code: "run: 127", Meaning: "the program was not found"},
}

// manExamples are EXAMPLES of the manual and of the reference. A test checks that every
// command and flag they use exists in the tree.
var manExamples = []man.Example{
	{Text: "Log in from a terminal without a browser (also over SSH)",
		Command: "tessel-proxy login --device"},
	{Text: "Use a self-hosted proxy server and trust its self-signed certificate",
		Command: "tessel-proxy env set PROXY_HOST=proxy.example.net PROXY_PORT=8443 PROXY_CERT=@proxy.pem"},
	{Text: "Register a Linux device reached over SSH",
		Command: "tessel-proxy device add kiosk ssh://pi@kiosk.example.net"},
	{Text: "Give that device the token from login",
		Command: "tessel-proxy env set --device kiosk --from-login"},
	{Text: "Show a device's configuration, tokens masked",
		Command: "tessel-proxy env list --device kiosk"},
	{Text: "Run a program with its connections shared through the tunnel",
		Command: "tessel-proxy run -- curl https://example.com/"},
	{Text: "Ask whether a host is reached directly or through the tunnel",
		Command: "tessel-proxy route 192.168.1.10:22"},
	{Text: "Serve tunnels with a generated certificate and a file of tokens",
		Command: "tessel-proxy serve --listen :8443 --self-signed --auth-tokens-file tokens.txt"},
	{Text: "Install completion for fish",
		Command: "tessel-proxy completion fish > ~/.config/fish/completions/tessel-proxy.fish"},
	{Text: "Install the manual pages",
		Command: "tessel-proxy man --dir /usr/local/share/man/man1"},
}

func manOptions() man.Options {
	return man.Options{
		Version:    currentVersion().Version,
		Variables:  proxyconfig.Variables,
		ExitStatus: manExitStatus,
		Examples:   manExamples,
	}
}

func manCommand(io IO) *cli.Command {
	return &cli.Command{
		Name:  "man",
		Usage: "print the manual page, or write the set of pages to a directory",
		Description: "Without --dir, prints tessel-proxy(1), the complete reference, to stdout: " +
			"read it with `tessel-proxy man | man -l -`. With --dir, writes tessel-proxy.1 and " +
			"one page per command (tessel-proxy-env.1, ...) into the directory.",
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "dir", Usage: "write every page into `DIR` (created if needed)"},
			&cli.StringFlag{Name: "format", Value: "roff",
				Usage: "`FORMAT` of the output: roff (man pages) or markdown (the reference in docs/)"},
		},
		Action: func(c *cli.Context) error {
			if c.NArg() > 0 {
				return usageError("man takes no arguments, got %q", c.Args().First())
			}
			opts := manOptions()
			dir := c.String("dir")
			switch c.String("format") {
			case "roff":
			case "markdown":
				if dir != "" {
					return usageError("--format markdown prints to stdout; leave out --dir %s", dir)
				}
				_, err := fmt.Fprint(io.Out, man.Markdown(c.App, opts, "make docs"))
				return err
			default:
				return usageError("--format %q: choose roff or markdown", c.String("format"))
			}
			if dir == "" {
				_, err := fmt.Fprint(io.Out, man.Main(c.App, opts).Text)
				return err
			}
			if err := os.MkdirAll(dir, 0o755); err != nil {
				return fmt.Errorf("create the manual directory: %w", err)
			}
			for _, p := range man.Pages(c.App, opts) {
				if err := os.WriteFile(filepath.Join(dir, p.FileName()), []byte(p.Text), 0o644); err != nil {
					return fmt.Errorf("write manual page: %w", err)
				}
			}
			return nil
		},
	}
}
