//go:build ignore

// readme_table copies the table of configuration variables from reference.md into
// ../README.md (go generate runs it after writing reference.md).
package main

import (
	"fmt"
	"os"

	"github.com/tessel/tessel-proxy/docs"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "readme_table:", err)
		os.Exit(1)
	}
}

func run() error {
	reference, err := os.ReadFile("reference.md")
	if err != nil {
		return err
	}
	table, err := docs.VariablesTable(reference)
	if err != nil {
		return err
	}
	readme, err := os.ReadFile("../README.md")
	if err != nil {
		return err
	}
	out, err := docs.ReplaceTable(readme, table)
	if err != nil {
		return err
	}
	return os.WriteFile("../README.md", out, 0o644)
}
