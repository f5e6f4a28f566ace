package deviceenv

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/tessel/tessel-proxy/proxyconfig"
)

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

func TestLoadLocal(t *testing.T) {
	dir := t.TempDir()
	env := lookupOf("XDG_CONFIG_HOME", dir, "HOME", "/nonexistent", "PROXY_PORT", "1234")
	path, err := proxyconfig.DefaultEnvPath(env)
	if err != nil || path != filepath.Join(dir, "tessel-proxy", "env") {
		t.Fatalf("DefaultEnvPath = %q, %v", path, err)
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte("PROXY_PORT=99\nPROXY_HOST=file.example\nPROXY_TOKEN='007'\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := LoadLocal(env)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Port != 1234 || cfg.Host != "file.example" || cfg.Token != "007" {
		t.Errorf("LoadLocal: env must win over the file, the file over defaults; got %+v", cfg)
	}

	if err := os.WriteFile(path, []byte("PROXY_TRUSTED=sure\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err = LoadLocal(env)
	if err == nil || !strings.Contains(err.Error(), "PROXY_TRUSTED") || !strings.Contains(err.Error(), path) {
		t.Errorf("a bad value in the env file must name the variable and the file, got %v", err)
	}
	if !errors.Is(err, proxyconfig.ErrBadConfig) {
		t.Errorf("errors.Is(%v, proxyconfig.ErrBadConfig) = false", err)
	}

	// A missing env file is no error.
	if _, err := LoadLocal(lookupOf("HOME", t.TempDir())); err != nil {
		t.Errorf("missing env file: %v", err)
	}
}
