// Package man writes the manual pages (roff, for man(1)) and the markdown reference of a
// urfave/cli command tree. Both come from one walk of the tree, so a command, flag or variable
// added to the program appears in both without an edit here.
package man

import (
	"strconv"
	"strings"

	"github.com/tessel/tessel-proxy/proxyconfig"
	"github.com/urfave/cli/v2"
)

// Options is what the pages say beyond the command tree.
type Options struct {
	// Version is printed in the page footer; it never appears in the markdown reference,
	// so that the committed reference does not change with every build.
	Version string
	// Variables is the table of configuration variables (ENVIRONMENT).
	Variables []proxyconfig.Variable
	// ExitStatus lists the exit statuses and what they mean (EXIT STATUS).
	ExitStatus []ExitStatus
	// Examples are shown in EXAMPLES of the main page and of the page of each command that
	// an example runs.
	Examples []Example
}

// ExitStatus is one row of EXIT STATUS.
type ExitStatus struct {
	Code    string // "0", "128+N"
	Meaning string
}

// Example is one example: what it does, and the command line.
type Example struct {
	Text    string
	Command string // begins with the program name
}

// command is one command of the tree, with what the pages show of it.
type command struct {
	path        []string // program name first
	aliases     []string
	usage       string // one line
	argsUsage   string
	description string
	flags       []flag
	subs        []*command
}

type flag struct {
	names       []string // "--device NAME", "-d NAME"
	usage       string
	defaultText string
	envVars     []string
}

func (c *command) name() string { return strings.Join(c.path, " ") }

// pageName is the name of the command's own page: "tessel-proxy-env".
func (c *command) pageName() string { return strings.Join(c.path, "-") }

// walk returns every command below c (not c itself), depth first, in tree order.
func (c *command) walk() []*command {
	var out []*command
	for _, s := range c.subs {
		out = append(out, s)
		out = append(out, s.walk()...)
	}
	return out
}

// fromApp reads the tree of app. The help command and hidden commands and flags are left out.
func fromApp(app *cli.App) *command {
	root := &command{
		path:        []string{app.Name},
		usage:       app.Usage,
		argsUsage:   app.ArgsUsage,
		description: app.Description,
		flags:       fromFlags(app.Flags, true),
	}
	root.subs = fromCommands(root.path, app.Commands)
	return root
}

func fromCommands(parent []string, cmds []*cli.Command) []*command {
	var out []*command
	for _, c := range cmds {
		if c.Hidden || c.Name == "help" {
			continue
		}
		path := append(append([]string(nil), parent...), c.Name)
		out = append(out, &command{
			path:        path,
			aliases:     c.Aliases,
			usage:       c.Usage,
			argsUsage:   c.ArgsUsage,
			description: c.Description,
			flags:       fromFlags(c.Flags, false),
			subs:        fromCommands(path, c.Subcommands),
		})
	}
	return out
}

// fromFlags describes the visible flags. --help and --version are described once, with the
// program's own flags (global), not again for every command.
func fromFlags(flags []cli.Flag, global bool) []flag {
	var out []flag
	for _, f := range flags {
		if v, ok := f.(cli.VisibleFlag); ok && !v.IsVisible() {
			continue
		}
		if !global && (f == cli.HelpFlag || f == cli.VersionFlag) {
			continue
		}
		d, ok := f.(cli.DocGenerationFlag)
		if !ok {
			out = append(out, flag{names: dashed(f.Names(), "")})
			continue
		}
		placeholder, usage := "", d.GetUsage()
		if d.TakesValue() {
			placeholder, usage = unquoteUsage(usage)
		}
		def := d.GetDefaultText()
		if !d.TakesValue() || def == "[]" {
			def = ""
		}
		if u, err := strconv.Unquote(def); err == nil {
			def = u
		}
		out = append(out, flag{
			names:       dashed(f.Names(), placeholder),
			usage:       usage,
			defaultText: def,
			envVars:     d.GetEnvVars(),
		})
	}
	return out
}

// dashed writes each name as the user types it: "--device NAME", "-d NAME".
func dashed(names []string, placeholder string) []string {
	out := make([]string, 0, len(names))
	for _, n := range names {
		prefix := "--"
		if len(n) == 1 {
			prefix = "-"
		}
		s := prefix + n
		if placeholder != "" {
			s += " " + placeholder
		}
		out = append(out, s)
	}
	return out
}

// unquoteUsage follows urfave/cli: the first `quoted` word of a flag's usage names its value.
func unquoteUsage(usage string) (placeholder, text string) {
	start := strings.IndexByte(usage, '`')
	if start >= 0 {
		if end := strings.IndexByte(usage[start+1:], '`'); end >= 0 {
			name := usage[start+1 : start+1+end]
			return name, usage[:start] + name + usage[start+2+end:]
		}
	}
	return "value", usage
}

// synopsis is the command line that runs c: "tessel-proxy env set [options] KEY=VALUE...".
func (c *command) synopsis() string {
	parts := []string{c.name()}
	if len(c.subs) > 0 && c.argsUsage == "" {
		parts = append(parts, "command")
	}
	if len(c.flags) > 0 {
		parts = append(parts, "[options]")
	}
	if c.argsUsage != "" {
		parts = append(parts, c.argsUsage)
	}
	return strings.Join(parts, " ")
}

// block is a paragraph of prose or a literal block (lines indented by a tab or spaces).
type block struct {
	literal bool
	lines   []string
}

// blocks splits a description into paragraphs and literal blocks. Prose lines are joined, so
// the page can fill them to the reader's width; a literal block keeps its lines and their
// indentation relative to one another.
func blocks(text string) []block {
	var out []block
	var cur *block
	blank := false
	for _, line := range strings.Split(strings.Trim(text, "\n"), "\n") {
		line = strings.TrimRight(line, " \t")
		if line == "" {
			blank = true
			continue
		}
		literal := strings.HasPrefix(line, "\t") || strings.HasPrefix(line, "  ")
		switch {
		case cur != nil && literal && cur.literal && blank:
			cur.lines = append(cur.lines, "") // one literal block, blank lines kept
		case cur == nil || cur.literal != literal || blank:
			out = append(out, block{literal: literal})
			cur = &out[len(out)-1]
		}
		cur.lines = append(cur.lines, line)
		blank = false
	}
	for i := range out {
		if out[i].literal {
			dedent(out[i].lines)
		}
	}
	return out
}

// dedent removes the indentation that all lines share.
func dedent(lines []string) {
	common := lines[0][:len(lines[0])-len(strings.TrimLeft(lines[0], " \t"))]
	for _, l := range lines[1:] {
		for l != "" && !strings.HasPrefix(l, common) {
			common = common[:len(common)-1]
		}
	}
	for i, l := range lines {
		lines[i] = strings.TrimPrefix(l, common)
	}
}

// examplesFor returns the examples that run c (or, for the root, all of them).
func examplesFor(c *command, all []Example) []Example {
	if len(c.path) == 1 {
		return all
	}
	var out []Example
	for _, e := range all {
		fields := strings.Fields(e.Command)
		if len(fields) >= len(c.path) && strings.Join(fields[:len(c.path)], " ") == c.name() {
			out = append(out, e)
		}
	}
	return out
}

// sentence ends s with a full stop, unless it has one.
func sentence(s string) string {
	s = strings.TrimSpace(s)
	if s == "" || strings.HasSuffix(s, ".") || strings.HasSuffix(s, "!") || strings.HasSuffix(s, "?") {
		return s
	}
	return s + "."
}
