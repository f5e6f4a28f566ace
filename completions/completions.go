// Package completions makes every command of a urfave/cli command tree complete in bash, zsh,
// fish and PowerShell: command and subcommand names, flags, and values that are known at run
// time (device names, configuration variable names, the accepted values of a variable).
//
// The shell scripts (see Script) call the program itself with the words before the cursor,
// the word under the cursor, and urfave/cli's hidden --generate-bash-completion flag; the
// BashComplete funcs that Install sets print one candidate a line, "candidate<TAB>description".
// Everything is read from the command tree at run time, so a command added to the tree
// completes without any change here.
package completions

import (
	"fmt"
	"io"
	"os"
	"slices"
	"strconv"
	"strings"

	"github.com/tessel/tessel-proxy/proxyconfig"
	"github.com/urfave/cli/v2"
)

// RequestFlag is the hidden flag, always last on the command line, that asks the program for
// completion candidates instead of running a command (urfave/cli's name for it).
const RequestFlag = "--generate-bash-completion"

// Options says where the values that are only known at run time come from.
type Options struct {
	// LookupEnv reads the environment, to find the device registry. Nil: os.LookupEnv.
	LookupEnv proxyconfig.Lookup
	// Args returns the full command line of the completion request, program name first and
	// RequestFlag last. Nil: os.Args. urfave/cli hands a BashComplete func only the parsed
	// context, and the word before the cursor (a flag waiting for its value, or not) is what
	// decides what to offer.
	Args func() []string
}

// Install sets a BashComplete func on app and on every command below it that has none, so
// that the whole tree answers completion requests. Call it after the tree is complete.
func Install(app *cli.App, opts Options) {
	if opts.LookupEnv == nil {
		opts.LookupEnv = os.LookupEnv
	}
	if opts.Args == nil {
		opts.Args = func() []string { return os.Args }
	}
	c := &completer{opts: opts}
	if app.BashComplete == nil {
		app.BashComplete = c.complete
	}
	var walk func([]*cli.Command)
	walk = func(cmds []*cli.Command) {
		for _, cmd := range cmds {
			if cmd.BashComplete == nil {
				cmd.BashComplete = c.complete
			}
			walk(cmd.Subcommands)
		}
	}
	walk(app.Commands)
}

type completer struct {
	opts Options
}

// candidate is one completion: the word, and a one-line description for shells that show one.
type candidate struct {
	word, help string
}

func (c *completer) complete(cCtx *cli.Context) {
	args := c.opts.Args()
	if len(args) > 0 && args[len(args)-1] == RequestFlag {
		args = args[:len(args)-1]
	}
	req := request{cmd: cCtx.Command, positional: cCtx.Args().Slice(), isSet: cCtx.IsSet}
	if n := len(args); n >= 2 {
		req.cur = args[n-1]
		req.prev = args[n-2]
		req.prevIsProgram = n == 2
	}
	// The lineage runs from this command up to the root command, which names the program.
	var lineage []*cli.Command
	for _, ctx := range cCtx.Lineage() {
		if ctx.Command != nil {
			lineage = append(lineage, ctx.Command)
		}
	}
	if len(lineage) > 1 {
		req.parent = lineage[1]
	}
	for i := len(lineage) - 2; i >= 0; i-- {
		req.path = append(req.path, lineage[i].Name)
	}
	writeCandidates(cCtx.App.Writer, c.candidates(req))
}

func writeCandidates(w io.Writer, cands []candidate) {
	for _, cand := range cands {
		help := strings.Join(strings.Fields(cand.help), " ")
		if help == "" {
			fmt.Fprintln(w, cand.word)
		} else {
			fmt.Fprintf(w, "%s\t%s\n", cand.word, help)
		}
	}
}

// request is one completion request, as the BashComplete func sees it.
type request struct {
	path          []string               // the command names on the line, without the program: "env", "set"
	cmd           *cli.Command           // the deepest command named on the line
	parent        *cli.Command           // its parent; nil for the root
	cur           string                 // the word under the cursor, possibly empty
	prev          string                 // the word before it
	prevIsProgram bool                   // prev is the program name itself
	positional    []string               // cmd's arguments after its flags, as urfave/cli parsed them
	isSet         func(name string) bool // whether a flag was given on the line
}

func (c *completer) candidates(r request) []candidate {
	cmd := r.cmd
	path := strings.Join(r.path, " ")
	// "tessel-proxy env<TAB>": the word under the cursor already names a command, so
	// urfave/cli descended into it; the user is still completing that name.
	if r.parent != nil && r.cur != "" && len(r.positional) == 0 && cmd.HasName(r.cur) &&
		!takesValue(cmd, r.prev) && !takesValue(r.parent, r.prev) {
		return commandCandidates(r.parent)
	}
	if path == "run" {
		// run's arguments are a program and its arguments: the shell completes those as it
		// would on a line of their own.
		switch {
		case len(r.positional) >= 2:
			return []candidate{delegate(len(r.positional) - 1)}
		case !strings.HasPrefix(r.cur, "-"):
			return []candidate{delegate(0)}
		}
	}
	if name, ok := strings.CutPrefix(r.cur, "--"); ok && strings.Contains(name, "=") {
		flagName, _, _ := strings.Cut(name, "=")
		var out []candidate
		for _, v := range c.flagValues(path, cmd, flagName) {
			out = append(out, candidate{word: "--" + flagName + "=" + v.word, help: v.help})
		}
		return out
	}
	if strings.HasPrefix(r.cur, "-") {
		return flagCandidates(cmd, r.cur, r.isSet)
	}
	if !r.prevIsProgram && takesValue(cmd, r.prev) {
		return c.flagValues(path, cmd, strings.TrimLeft(r.prev, "-"))
	}
	if subs := commandCandidates(cmd); len(subs) > 0 {
		return subs
	}
	index := len(r.positional) - 1 // r.cur is the last positional argument
	if index < 0 {
		index = 0
	}
	return c.argValues(path, index, r.cur)
}

// DelegatePrefix starts the one line of output that tells the shell script to complete the
// rest of the line as a command of its own: ":delegate N", where N words before the word under
// the cursor belong to that command (0: the cursor is on the command's name).
const DelegatePrefix = ":delegate "

func delegate(words int) candidate {
	return candidate{word: DelegatePrefix + strconv.Itoa(words)}
}

// commandCandidates lists the visible subcommands of cmd, every name and alias.
func commandCandidates(cmd *cli.Command) []candidate {
	var out []candidate
	for _, sub := range cmd.Subcommands {
		// urfave/cli adds a "help" subcommand to every command it runs; --help is offered
		// with the flags instead.
		if sub.Hidden || sub.Name == "help" {
			continue
		}
		for _, name := range sub.Names() {
			out = append(out, candidate{word: name, help: sub.Usage})
		}
	}
	return out
}

// flagCandidates lists the visible flags of cmd for a word that starts with "-". A flag that
// is already on the line is offered again only if it may be repeated.
func flagCandidates(cmd *cli.Command, cur string, isSet func(string) bool) []candidate {
	var out []candidate
	for _, f := range cmd.Flags {
		if v, ok := f.(cli.VisibleFlag); ok && !v.IsVisible() {
			continue
		}
		if isSet(f.Names()[0]) && !repeatable(f) {
			continue
		}
		help := ""
		if d, ok := f.(cli.DocGenerationFlag); ok {
			help = strings.ReplaceAll(d.GetUsage(), "`", "")
		}
		for _, name := range f.Names() {
			word := "--" + name
			if len(name) == 1 {
				if strings.HasPrefix(cur, "--") {
					continue // the user asked for long names
				}
				word = "-" + name
			}
			out = append(out, candidate{word: word, help: help})
		}
	}
	return out
}

func repeatable(f cli.Flag) bool {
	s, ok := f.(cli.DocGenerationSliceFlag)
	return ok && s.IsSliceFlag()
}

// takesValue reports whether word is a flag of cmd that needs a value (so the next word is
// that value).
func takesValue(cmd *cli.Command, word string) bool {
	f := lookupFlag(cmd, word)
	if f == nil {
		return false
	}
	d, ok := f.(cli.DocGenerationFlag)
	return ok && d.TakesValue()
}

// lookupFlag finds the flag of cmd that word ("-d", "--device") names, or nil.
func lookupFlag(cmd *cli.Command, word string) cli.Flag {
	if !strings.HasPrefix(word, "-") || word == "-" || word == "--" {
		return nil
	}
	name := strings.TrimLeft(word, "-")
	for _, f := range cmd.Flags {
		if slices.Contains(f.Names(), name) {
			return f
		}
	}
	return nil
}

// flagValues lists the values that the flag called name of cmd (at path) accepts, where they
// are known.
func (c *completer) flagValues(path string, cmd *cli.Command, name string) []candidate {
	f := lookupFlag(cmd, "--"+name)
	if f == nil {
		return nil
	}
	switch {
	case slices.Contains(f.Names(), "device"):
		return deviceCandidates(c.opts.LookupEnv)
	case path == "man" && slices.Contains(f.Names(), "format"):
		return []candidate{{word: "roff", help: "manual pages"}, {word: "markdown", help: "the reference"}}
	}
	return nil
}

// argValues lists the values of positional argument number index (from 0) of the command at
// path ("env set"), where they are known. Commands are recognised by their names in the tree,
// so that the files that define them need not know about completion.
func (c *completer) argValues(path string, index int, cur string) []candidate {
	switch {
	case path == "env get" || path == "env unset":
		return variableNames("")
	case path == "env set":
		if name, _, ok := strings.Cut(cur, "="); ok {
			return variableValues(name)
		}
		return variableNames("=")
	case path == "device add":
		if index == 1 {
			return []candidate{
				{word: "local", help: "this machine"},
				{word: "ssh://", help: "a Linux device reached with the system ssh client"},
			}
		}
		return nil
	case strings.HasPrefix(path, "device ") && path != "device list":
		return deviceCandidates(c.opts.LookupEnv) // remove, default: device names
	case path == "completion":
		out := make([]candidate, 0, len(Shells))
		for _, sh := range Shells {
			out = append(out, candidate{word: sh})
		}
		return out
	}
	return nil
}

// variableNames lists the configuration variables, each followed by suffix.
func variableNames(suffix string) []candidate {
	out := make([]candidate, 0, len(proxyconfig.Variables))
	for _, v := range proxyconfig.Variables {
		out = append(out, candidate{word: v.Name + suffix, help: v.Help})
	}
	return out
}

// variableValues lists "NAME=value" for the accepted values of the variable called name, when
// it has a fixed set of them.
func variableValues(name string) []candidate {
	for _, v := range proxyconfig.Variables {
		if v.Name != name {
			continue
		}
		out := make([]candidate, 0, len(v.Values))
		for _, val := range v.Values {
			help := ""
			if val == v.Default {
				help = "default"
			}
			out = append(out, candidate{word: name + "=" + val, help: help})
		}
		return out
	}
	return nil
}
