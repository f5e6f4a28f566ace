package deviceenv

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// trickyValues must survive FormatEnv followed by ParseEnv byte for byte.
var trickyValues = []string{
	"", "007", "0", "1e3", "true", "plain",
	"with spaces", "  leading and trailing  ", "a # not a comment", "#start", "end #",
	`it's`, `say "hi"`, `"quoted"`, `'single'`, `mixed ' and "`,
	`$HOME`, `${HOME}`, `$(id)`, `cost: $5`, `\$`, `a\$b`,
	`back\slash`, `C:\dir\`, `\\server\share`, `\n is not a newline`, `\"`, `\'`,
	"line one\nline two", "trailing newline\n", "crlf\r\nline", "tab\there",
	"unicode: héllo ✓ \u00a0nbsp", "= sign = ok", "export X=1",
	"-----BEGIN CERTIFICATE-----\nMIIBszCCAVmgAwIBAgIUK\n+/=abc\n-----END CERTIFICATE-----\n",
	`it's "quoted"`, "it's C:\\", "it's\nmultiline and ends in \"", `ends in '\`,
}

func TestEnvRoundTrip(t *testing.T) {
	vars := map[string]string{}
	for i, v := range trickyValues {
		vars[keyFor(i)] = v
	}
	// Values no quoting of godotenv's can hold are refused, not corrupted.
	refused := map[string]bool{"it's\nmultiline and ends in \"": true}
	for k, v := range vars {
		if refused[v] {
			if _, err := QuoteValue(v); err == nil {
				t.Errorf("QuoteValue(%q) succeeded, want a clear refusal", v)
			}
			delete(vars, k)
		}
	}
	text, err := FormatEnv(vars)
	if err != nil {
		t.Fatal(err)
	}
	got, err := ParseEnv(text)
	if err != nil {
		t.Fatalf("ParseEnv: %v\n%s", err, text)
	}
	for k, v := range vars {
		if got[k] != v {
			t.Errorf("%s: wrote %q, read back %q\nfile:\n%s", k, v, got[k], text)
		}
	}
	if len(got) != len(vars) {
		t.Errorf("read %d variables, wrote %d", len(got), len(vars))
	}
}

func keyFor(i int) string { return "K" + strings.Repeat("X", i) }

func FuzzQuoteValue(f *testing.F) {
	for _, v := range trickyValues {
		f.Add(v)
	}
	f.Fuzz(func(t *testing.T, v string) {
		q, err := QuoteValue(v)
		if err != nil {
			return
		}
		got, err := ParseEnv([]byte("A=" + q + "\nB='after'\n"))
		if err != nil {
			t.Fatalf("QuoteValue(%q) = %s, which does not parse: %v", v, q, err)
		}
		if got["A"] != v || got["B"] != "after" {
			t.Fatalf("QuoteValue(%q) = %s, reads back as %q (next var %q)", v, q, got["A"], got["B"])
		}
	})
}

func TestReadEnvFile(t *testing.T) {
	dir := t.TempDir()
	m, err := ReadEnvFile(filepath.Join(dir, "missing"))
	if err != nil || len(m) != 0 {
		t.Errorf("missing file: %v, %v; want an empty map", m, err)
	}
	path := filepath.Join(dir, "env")
	hand := "# a comment\nexport PROXY_HOST=proxy.example.net # trailing comment\nPROXY_PORT=\"8443\"\n\nPROXY_TRUSTED='yes'\n"
	if err := os.WriteFile(path, []byte(hand), 0o600); err != nil {
		t.Fatal(err)
	}
	m, err = ReadEnvFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if m["PROXY_HOST"] != "proxy.example.net" || m["PROXY_PORT"] != "8443" || m["PROXY_TRUSTED"] != "yes" {
		t.Errorf("hand-written file read as %q", m)
	}
	if err := os.WriteFile(path, []byte("A='unterminated\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := ReadEnvFile(path); err == nil || !strings.Contains(err.Error(), path) {
		t.Errorf("broken file: %v, want an error naming the file", err)
	}
}

func TestCheckKey(t *testing.T) {
	for _, k := range []string{"A", "_PROXY_DBG", "PROXY_HOST", "a1"} {
		if CheckKey(k) != nil {
			t.Errorf("CheckKey(%q) rejected a good name", k)
		}
	}
	for _, k := range []string{"", "1A", "A-B", "A B", "A=B", "A.B"} {
		if CheckKey(k) == nil {
			t.Errorf("CheckKey(%q) accepted a bad name", k)
		}
	}
}

// An env file holds tokens, so a parse error names the line and the problem, never the text.
func TestParseEnvErrorsShowNoValues(t *testing.T) {
	for _, tc := range []struct{ text, want string }{
		{"PROXY_TOKEN=s3cret-1\nBAD LINE here\nTM_API_KEY=s3cret-3\n", "line 2: no = after the variable name"},
		{"PROXY_TOKEN=s3cret-1\r\nTM-API-KEY=s3cret-2\r\n", `line 2: a variable name holds only letters, digits and _, then = and the value (found "-")`},
		{"A=1\n\nPROXY_TOKEN=\"s3cret-1\nB=s3cret-2\n", "line 3: a quoted value has no closing quote"},
	} {
		_, err := ParseEnv([]byte(tc.text))
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("ParseEnv(%q) = %v, want an error saying %q", tc.text, err, tc.want)
		}
		if err != nil && strings.Contains(err.Error(), "s3cret") {
			t.Errorf("ParseEnv(%q) error shows the file's values: %v", tc.text, err)
		}
	}
}
