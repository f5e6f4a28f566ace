package deviceenv

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// fuzzSecret follows the fuzzed text in every input: env files hold tokens, and an error
// about the text must name the line, never quote what follows it.
const fuzzSecret = "S3cr3t-T0ken-Do-Not-Quote"

// FuzzParseEnv reads fuzzed dotenv text, as `run` and `env` read a device's env file. It
// must never panic nor quote the file in its error, and what it reads must survive a write
// with FormatEnv and a second read unchanged.
func FuzzParseEnv(f *testing.F) {
	for _, seed := range []string{
		"PROXY_HOST=proxy.example.net\nPROXY_PORT=443\n",
		"A='single quoted'\nB=\"double \\\"quoted\\\"\\n\"\nC=bare value # comment\n",
		"export PROXY_TOKEN=abc\n# comment\n\n",
		"PROXY_CERT=\"-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n\"\n",
		"A=1\r\nB=2\r\n",
		"A: yaml style\n",
		"A='unterminated\n",
		"1BAD=x\n",
		"A=007\nB=\nC=''\n",
		"=novalue\n",
		"A",
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		text := append(append(append([]byte{}, in...), "\nX_SECRET="...), fuzzSecret...)
		vars, err := ParseEnv(text)
		if err != nil {
			if strings.Contains(err.Error(), fuzzSecret) {
				t.Fatalf("the error quotes the file: %v", err)
			}
			return
		}
		out, err := FormatEnv(vars)
		if err != nil {
			return // a key or value FormatEnv refuses to write (it says which)
		}
		again, err := ParseEnv(out)
		if err != nil {
			t.Fatalf("FormatEnv wrote text that does not parse: %v\n%s", err, out)
		}
		if len(again) != len(vars) {
			t.Fatalf("round trip: %d variables, then %d\n%s", len(vars), len(again), out)
		}
		for k, v := range vars {
			if again[k] != v {
				t.Fatalf("round trip of %s: %q became %q", k, v, again[k])
			}
		}
	})
}

// FuzzReadEnvFile is FuzzParseEnv through the file: the reader's error names the file and
// still never quotes it.
func FuzzReadEnvFile(f *testing.F) {
	f.Add([]byte("PROXY_HOST=proxy.example.net\n"))
	f.Add([]byte("A='unterminated\n"))
	f.Add([]byte("\xff\xfe\x00"))
	dir := f.TempDir()
	f.Fuzz(func(t *testing.T, in []byte) {
		path := filepath.Join(dir, "env")
		text := append(append([]byte{}, in...), "\nX_SECRET="+fuzzSecret...)
		if err := os.WriteFile(path, text, 0o600); err != nil {
			t.Fatal(err)
		}
		vars, err := ReadEnvFile(path)
		if err != nil {
			if strings.Contains(err.Error(), fuzzSecret) || !strings.Contains(err.Error(), path) {
				t.Fatalf("error %q: must name %s and not quote it", err, path)
			}
			return
		}
		direct, err := ParseEnv(text)
		if err != nil || len(direct) != len(vars) {
			t.Fatalf("ReadEnvFile and ParseEnv disagree: %v, %d vs %d variables", err, len(vars), len(direct))
		}
	})
}
