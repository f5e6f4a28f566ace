package deviceenv

import (
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
	// Values that no quoting both godotenv and a shell read back can hold are refused, not
	// corrupted.
	refused := map[string]bool{
		"it's\nmultiline and ends in \"": true, `C:\dir\`: true, "it's C:\\": true, `ends in '\`: true,
		`mixed ' and "`: true, `it's "quoted"`: true,
	}
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
