package commands

import (
	"fmt"
	"runtime"
	"runtime/debug"

	"github.com/urfave/cli/v2"
)

// Set at link time by the Makefile and the release build:
//
//	go build -ldflags "-X github.com/tessel/tessel-proxy/commands.version=v1.2.3
//	                   -X github.com/tessel/tessel-proxy/commands.commit=0123abc..."
//
// When they are empty, the version and commit the Go toolchain recorded in the binary are used.
var (
	version string
	commit  string
)

// buildVersion is what `version` reports about this binary.
type buildVersion struct {
	Version  string // "v1.2.3"; "devel" when nothing recorded one
	Commit   string // VCS revision, "" when unknown
	Modified bool   // built from a work tree with uncommitted changes
}

// currentVersion reads the version set at link time, falling back to the build info that
// `go build` and `go install module@version` record.
func currentVersion() buildVersion {
	v := buildVersion{Version: version, Commit: commit}
	if info, ok := debug.ReadBuildInfo(); ok {
		if v.Version == "" && info.Main.Version != "" && info.Main.Version != "(devel)" {
			v.Version = info.Main.Version
		}
		if commit == "" {
			for _, s := range info.Settings {
				switch s.Key {
				case "vcs.revision":
					v.Commit = s.Value
				case "vcs.modified":
					v.Modified = s.Value == "true"
				}
			}
		}
	}
	if v.Version == "" {
		v.Version = "devel"
	}
	return v
}

// String is the version as `--version` and `version` print it after the program name:
// "v1.2.3 (commit 0123456789ab, go1.26.8 linux/amd64)".
func (v buildVersion) String() string {
	s := v.Version + " ("
	if v.Commit != "" {
		c := v.Commit
		if len(c) > 12 {
			c = c[:12]
		}
		s += "commit " + c
		if v.Modified {
			s += ", modified"
		}
		s += ", "
	}
	return s + runtime.Version() + " " + runtime.GOOS + "/" + runtime.GOARCH + ")"
}

func versionCommand(io IO) *cli.Command {
	return &cli.Command{
		Name:  "version",
		Usage: "print the version and commit this binary was built from",
		Description: "Prints the same line as --version: the release version, the VCS commit, " +
			"and the Go toolchain and platform of the build.",
		Action: func(c *cli.Context) error {
			if c.NArg() > 0 {
				return usageError("version takes no arguments, got %q", c.Args().First())
			}
			fmt.Fprintf(io.Out, "%s version %s\n", c.App.Name, currentVersion())
			return nil
		},
	}
}
