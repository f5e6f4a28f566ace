// Package docs holds reference.md, the markdown reference of the command line. It is generated
// from the command tree, like the manual pages; a test fails when the committed copy is stale.
// The configuration table in the repository's README.md is copied from reference.md by the
// same `make docs`, so that it too comes from proxyconfig.Variables.
package docs

import (
	"bytes"
	"errors"
)

//go:generate sh -c "go run .. man --format markdown > reference.md"
//go:generate go run readme_table.go

// The README's copy of the table sits between these two lines.
const (
	TableBegin = "<!-- The table below is generated from proxyconfig.Variables by `make docs`: edit those, not it. -->"
	TableEnd   = "<!-- End of the generated table. -->"
)

// VariablesTable returns the markdown table of configuration variables in reference: its
// lines from the header row to the last row, each ending in a newline.
func VariablesTable(reference []byte) ([]byte, error) {
	start := bytes.Index(reference, []byte("\n| Variable | Default | Meaning |\n"))
	if start < 0 {
		return nil, errors.New("reference.md has no table of variables")
	}
	table := reference[start+1:]
	if end := bytes.Index(table, []byte("\n\n")); end >= 0 {
		table = table[:end+1]
	}
	return table, nil
}

// ReplaceTable returns readme with the lines between TableBegin and TableEnd replaced by table,
// set off by blank lines (so that markdown reads the table as one).
func ReplaceTable(readme, table []byte) ([]byte, error) {
	begin := bytes.Index(readme, []byte(TableBegin+"\n"))
	end := bytes.Index(readme, []byte(TableEnd+"\n"))
	if begin < 0 || end < begin {
		return nil, errors.New("README.md lacks the lines that mark the generated table:\n" + TableBegin + "\n" + TableEnd)
	}
	begin += len(TableBegin) + 1
	out := append([]byte(nil), readme[:begin]...)
	out = append(out, '\n')
	out = append(out, table...)
	out = append(out, '\n')
	return append(out, readme[end:]...), nil
}
