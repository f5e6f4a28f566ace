package man

import (
	"fmt"
	"strings"

	"github.com/urfave/cli/v2"
)

// Markdown returns the reference in markdown, from the same tree and options as Main
// (opts.Version is not shown, so that the committed copy changes only with the tree).
// regenerate names the command that rebuilds the committed copy; it is printed in a comment
// at the top.
func Markdown(app *cli.App, opts Options, regenerate string) string {
	root := fromApp(app)
	var b strings.Builder
	w := func(format string, args ...any) { fmt.Fprintf(&b, format+"\n", args...) }

	w("<!-- Generated from the command tree; do not edit. Regenerate with `%s`. -->", regenerate)
	w("")
	w("# %s", root.name())
	w("")
	w("%s", sentence(root.usage))
	w("")
	w("```")
	w("%s", root.synopsis())
	for _, s := range root.walk() {
		if len(s.subs) == 0 {
			w("%s", s.synopsis())
		}
	}
	w("```")
	if root.description != "" {
		w("")
		writeMarkdownBlocks(&b, root.description)
	}
	if len(root.flags) > 0 {
		w("")
		w("## Global options")
		w("")
		writeMarkdownFlags(&b, root.flags)
	}

	subs := root.walk()
	if len(subs) > 0 {
		w("")
		w("## Commands")
		w("")
		for _, s := range subs {
			indent := strings.Repeat("  ", len(s.path)-2)
			w("%s- [`%s`](#%s): %s", indent, s.name(), anchor(s.name()), s.usage)
		}
		for _, s := range subs {
			w("")
			w("### %s", s.name())
			if s.usage != "" {
				w("")
				w("%s", sentence(s.usage))
			}
			if len(s.aliases) > 0 {
				w("")
				w("Also called: %s.", strings.Join(s.aliases, ", "))
			}
			if len(s.subs) == 0 {
				w("")
				w("```")
				w("%s", s.synopsis())
				w("```")
			}
			if s.description != "" {
				w("")
				writeMarkdownBlocks(&b, s.description)
			}
			if len(s.flags) > 0 {
				w("")
				writeMarkdownFlags(&b, s.flags)
			}
			if ex := examplesFor(s, opts.Examples); len(ex) > 0 && len(s.subs) == 0 {
				w("")
				w("Examples:")
				w("")
				w("```sh")
				for _, e := range ex {
					w("# %s", e.Text)
					w("%s", e.Command)
				}
				w("```")
			}
		}
	}
	if len(opts.Variables) > 0 {
		w("")
		w("## Environment")
		w("")
		w("Each variable is read from the environment first, then from the env file of the device " +
			"(written by `" + root.name() + " env set`), then the default applies.")
		w("")
		w("| Variable | Default | Meaning |")
		w("|---|---|---|")
		for _, v := range opts.Variables {
			def := ""
			if v.Default != "" {
				def = "`" + cell(v.Default) + "`"
			}
			meaning := sentence(cell(v.Help))
			if v.Secret {
				meaning += " Masked by `env list`."
			}
			w("| `%s` | %s | %s |", v.Name, def, meaning)
		}
	}
	if len(opts.ExitStatus) > 0 {
		w("")
		w("## Exit status")
		w("")
		w("| Status | Meaning |")
		w("|---|---|")
		for _, e := range opts.ExitStatus {
			w("| %s | %s |", cell(e.Code), sentence(cell(e.Meaning)))
		}
	}
	if len(opts.Examples) > 0 {
		w("")
		w("## Examples")
		w("")
		w("```sh")
		for i, e := range opts.Examples {
			if i > 0 {
				w("")
			}
			w("# %s", e.Text)
			w("%s", e.Command)
		}
		w("```")
	}
	return b.String()
}

func writeMarkdownFlags(b *strings.Builder, flags []flag) {
	fmt.Fprintln(b, "| Option | Meaning |")
	fmt.Fprintln(b, "|---|---|")
	for _, f := range flags {
		var names []string
		for _, n := range f.names {
			names = append(names, "`"+n+"`")
		}
		text := sentence(cell(f.usage))
		if f.defaultText != "" {
			text += " Default: `" + cell(f.defaultText) + "`."
		}
		if len(f.envVars) > 0 {
			text += " Environment: `" + strings.Join(f.envVars, "`, `") + "`."
		}
		fmt.Fprintf(b, "| %s | %s |\n", strings.Join(names, ", "), strings.TrimSpace(text))
	}
}

func writeMarkdownBlocks(b *strings.Builder, text string) {
	for i, bl := range blocks(text) {
		if i > 0 {
			fmt.Fprintln(b)
		}
		if bl.literal {
			fmt.Fprintln(b, "```")
			for _, l := range bl.lines {
				fmt.Fprintln(b, l)
			}
			fmt.Fprintln(b, "```")
			continue
		}
		fmt.Fprintln(b, strings.Join(bl.lines, " "))
	}
}

// cell makes s fit in one table cell.
func cell(s string) string {
	return strings.ReplaceAll(strings.Join(strings.Fields(s), " "), "|", `\|`)
}

// anchor is the id GitHub gives a heading.
func anchor(heading string) string {
	var b strings.Builder
	for _, r := range strings.ToLower(heading) {
		switch {
		case r == ' ':
			b.WriteByte('-')
		case r == '-' || r == '_' || (r >= 'a' && r <= 'z') || (r >= '0' && r <= '9'):
			b.WriteRune(r)
		}
	}
	return b.String()
}
