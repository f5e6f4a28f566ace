package man

import (
	"fmt"
	"strings"

	"github.com/urfave/cli/v2"
)

// Page is one manual page in roff (man(7)) markup.
type Page struct {
	Name    string // "tessel-proxy", "tessel-proxy-env"
	Section int
	Text    string
}

// FileName is the name man(1) looks for: "tessel-proxy-env.1".
func (p Page) FileName() string { return fmt.Sprintf("%s.%d", p.Name, p.Section) }

// Main returns the program's page, which is the complete reference: every command, flag,
// variable, exit status and example. app must have run (or had Setup called), so that its
// --help and --version flags are in place.
func Main(app *cli.App, opts Options) Page {
	root := fromApp(app)
	return render(root, root, opts)
}

// Pages returns the main page followed by one page per command of the program
// (tessel-proxy-env(1) for `tessel-proxy env` and its subcommands), as man(1) finds them by the
// command's name.
func Pages(app *cli.App, opts Options) []Page {
	root := fromApp(app)
	pages := []Page{render(root, root, opts)}
	for _, c := range root.subs {
		pages = append(pages, render(root, c, opts))
	}
	return pages
}

func render(root, c *command, opts Options) Page {
	var b strings.Builder
	w := func(format string, args ...any) { fmt.Fprintf(&b, format+"\n", args...) }
	isRoot := c == root

	w(`.\" Generated from the command tree by "%s man". Do not edit.`, root.name())
	w(".TH %s 1 \"\" %s \"User Commands\"", quote(strings.ToUpper(c.pageName())),
		quote(strings.TrimSpace(root.name()+" "+opts.Version)))
	// Generated text wraps badly when hyphenated and justified at 80 columns.
	w(".nh")
	w(".ad l")
	w(".SH NAME")
	w("%s \\- %s", escape(c.pageName()), inline(c.usage))

	w(".SH SYNOPSIS")
	w(".nf")
	for _, s := range append([]*command{c}, c.walk()...) {
		if len(s.subs) == 0 || (s == c && isRoot) {
			w("%s", synopsisLine(s))
		}
	}
	w(".fi")

	if c.description != "" {
		w(".SH DESCRIPTION")
		writeBlocks(&b, c.description)
	}
	if len(c.flags) > 0 {
		if isRoot {
			w(".SH GLOBAL OPTIONS")
		} else {
			w(".SH OPTIONS")
		}
		writeFlags(&b, c.flags)
	}
	if subs := c.walk(); len(subs) > 0 {
		w(".SH COMMANDS")
		for _, s := range subs {
			w(".SS %s", quote(s.name()))
			if s.usage != "" {
				w("%s", sentence(inline(s.usage)))
			}
			if len(s.aliases) > 0 {
				w(".PP")
				w("Also called: %s.", escape(strings.Join(s.aliases, ", ")))
			}
			if len(s.subs) == 0 {
				w(".PP")
				w(".RS 4")
				w(".nf")
				w("%s", synopsisLine(s))
				w(".fi")
				w(".RE")
			}
			if s.description != "" {
				w(".PP")
				writeBlocks(&b, s.description)
			}
			if len(s.flags) > 0 {
				w(".PP")
				w("Options:")
				writeFlags(&b, s.flags)
			}
		}
	}
	if isRoot && len(opts.Variables) > 0 {
		w(".SH ENVIRONMENT")
		w("Each variable is read from the environment first, then from the env file of the "+
			"device (written by \\fB%s env set\\fR), then the default applies.", escape(root.name()))
		// A tagged list rather than a tbl table: a table's text blocks cannot cross a page
		// break, so a table grows warnings as the help texts above it change length.
		for _, v := range opts.Variables {
			meaning := sentence(inline(v.Help))
			if v.Default != "" {
				meaning += " Default: " + code(v.Default) + "."
			}
			if v.Secret {
				meaning += " Masked by \\fBenv list\\fR."
			}
			w(".TP")
			w(".B %s", escape(v.Name))
			w("%s", meaning)
		}
	}
	if isRoot && len(opts.ExitStatus) > 0 {
		w(".SH EXIT STATUS")
		for _, e := range opts.ExitStatus {
			w(".TP 12")
			w(".B %s", escape(e.Code))
			w("%s", sentence(inline(e.Meaning)))
		}
	}
	if ex := examplesFor(c, opts.Examples); len(ex) > 0 {
		w(".SH EXAMPLES")
		for _, e := range ex {
			w(".PP")
			w("%s", sentence(inline(e.Text)))
			w(".PP")
			w(".RS 4")
			w(".nf")
			w("\\fB%s\\fR", escape(e.Command))
			w(".fi")
			w(".RE")
		}
	}
	w(".SH SEE ALSO")
	var refs []string
	if !isRoot {
		refs = append(refs, fmt.Sprintf("\\fB%s\\fR(1)", escape(root.pageName())))
	}
	for _, s := range root.subs {
		if s != c {
			refs = append(refs, fmt.Sprintf("\\fB%s\\fR(1)", escape(s.pageName())))
		}
	}
	w("%s", strings.Join(refs, ",\n"))
	return Page{Name: c.pageName(), Section: 1, Text: b.String()}
}

// synopsisLine is a synopsis in roff: the command bold, the rest roman.
func synopsisLine(c *command) string {
	rest := strings.TrimPrefix(c.synopsis(), c.name())
	return fmt.Sprintf("\\fB%s\\fR%s", escape(c.name()), escape(rest))
}

func writeFlags(b *strings.Builder, flags []flag) {
	for _, f := range flags {
		fmt.Fprintln(b, ".TP")
		var names []string
		for _, n := range f.names {
			name, value, _ := strings.Cut(n, " ")
			s := "\\fB" + escape(name) + "\\fR"
			if value != "" {
				s += " \\fI" + escape(value) + "\\fR"
			}
			names = append(names, s)
		}
		fmt.Fprintln(b, strings.Join(names, ", "))
		text := sentence(inline(f.usage))
		if f.defaultText != "" {
			text += " Default: " + code(f.defaultText) + "."
		}
		if len(f.envVars) > 0 {
			var vars []string
			for _, v := range f.envVars {
				vars = append(vars, code(v))
			}
			text += " Environment: " + strings.Join(vars, ", ") + "."
		}
		fmt.Fprintln(b, strings.TrimSpace(text))
	}
}

func writeBlocks(b *strings.Builder, text string) {
	for i, bl := range blocks(text) {
		if i > 0 || bl.literal {
			fmt.Fprintln(b, ".PP")
		}
		if bl.literal {
			fmt.Fprintln(b, ".RS 4")
			fmt.Fprintln(b, ".nf")
			for _, l := range bl.lines {
				if l == "" {
					fmt.Fprintln(b, ".sp")
				} else {
					fmt.Fprintln(b, escape(l))
				}
			}
			fmt.Fprintln(b, ".fi")
			fmt.Fprintln(b, ".RE")
			continue
		}
		fmt.Fprintln(b, inline(strings.Join(bl.lines, " ")))
	}
}

// escape makes s safe as roff text: backslashes and hyphens (so that options copy and paste
// as typed), and a control character at the start of a line.
func escape(s string) string {
	s = strings.NewReplacer(`\`, `\e`, "-", `\-`, "`", `\(ga`, "'", `\(aq`).Replace(s)
	if strings.HasPrefix(s, ".") {
		s = `\&` + s
	}
	return s
}

// inline is escape, with `quoted` words set in bold (commands, variables and values in help
// text are written that way).
func inline(s string) string {
	s = strings.Join(strings.Fields(s), " ")
	parts := strings.Split(s, "`")
	if len(parts)%2 == 0 { // unpaired backquote: no markup
		return escape(s)
	}
	var b strings.Builder
	for i, p := range parts {
		if i%2 == 1 {
			b.WriteString(code(p))
		} else {
			b.WriteString(escape(p))
		}
	}
	out := b.String()
	if strings.HasPrefix(out, `\fB.`) {
		out = `\&` + out
	}
	return out
}

func code(s string) string { return `\fB` + escape(s) + `\fR` }

// quote makes s one argument of a macro.
func quote(s string) string {
	return `"` + strings.ReplaceAll(escape(s), `"`, `\(dq`) + `"`
}
