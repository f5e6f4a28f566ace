package docs_test

import (
	"bytes"
	"os"
	"strings"
	"testing"

	"github.com/tessel/tessel-proxy/commands"
	"github.com/tessel/tessel-proxy/docs"
)

func TestReferenceIsCurrent(t *testing.T) {
	var out bytes.Buffer
	io := commands.IO{In: strings.NewReader(""), Out: &out, Err: &out,
		LookupEnv: func(string) (string, bool) { return "", false }}
	if code := commands.Main(io, []string{"tessel-proxy", "man", "--format", "markdown"}); code != 0 {
		t.Fatalf("tessel-proxy man --format markdown: exit %d: %s", code, out.String())
	}
	committed, err := os.ReadFile("reference.md")
	if err != nil {
		t.Fatalf("%v: run `make docs` (or `go generate ./...`) to write it", err)
	}
	if !bytes.Equal(committed, out.Bytes()) {
		t.Fatal("docs/reference.md is stale: the command tree changed since it was generated. " +
			"Run `make docs` (or `go generate ./...`) and commit the result.")
	}
}

func TestREADMEVariablesTableIsCurrent(t *testing.T) {
	reference, err := os.ReadFile("reference.md")
	if err != nil {
		t.Fatal(err)
	}
	table, err := docs.VariablesTable(reference)
	if err != nil {
		t.Fatal(err)
	}
	readme, err := os.ReadFile("../README.md")
	if err != nil {
		t.Fatal(err)
	}
	want, err := docs.ReplaceTable(readme, table)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(readme, want) {
		t.Fatal("README.md's table of configuration variables differs from proxyconfig.Variables. " +
			"Run `make docs` (or `go generate ./docs/`) and commit the result.")
	}
}
