package proxyserver

import (
	"context"
	"crypto/sha256"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func sha256Sum(s string) [32]byte { return sha256.Sum256([]byte(s)) }

func TestStaticAuthenticator(t *testing.T) {
	a, err := NewStaticAuthenticator("right")
	if err != nil {
		t.Fatal(err)
	}
	if id, err := a.Authenticate(context.Background(), "right"); err != nil || id.Subject == "" || !id.Expiry.IsZero() {
		t.Errorf("right token: %+v, %v", id, err)
	}
	for _, wrong := range []string{"", "righ", "right ", "RIGHT", "wrong"} {
		if _, err := a.Authenticate(context.Background(), wrong); !errors.Is(err, ErrTokenRefused) {
			t.Errorf("%q: %v, want ErrTokenRefused", wrong, err)
		}
	}
	if _, err := NewStaticAuthenticator(""); err == nil {
		t.Error("empty token accepted as configuration")
	}
}

func TestTokensFileErrorsNameTheLineNotTheToken(t *testing.T) {
	dir := t.TempDir()
	tests := []struct {
		name, content, want string
	}{
		{"bad digest", "# c\nok-token\nsha256:abc-secret-ish\n", "line 3"},
		{"empty", "# nothing\n\n", "lists no token"},
		{"too long", strings.Repeat("x", 9000) + "\n", "line 1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(dir, strings.ReplaceAll(tt.name, " ", "-"))
			if err := os.WriteFile(path, []byte(tt.content), 0o600); err != nil {
				t.Fatal(err)
			}
			_, err := NewTokensFile(path, nil)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("NewTokensFile: %v, want an error with %q", err, tt.want)
			}
			if strings.Contains(err.Error(), "secret") || strings.Contains(err.Error(), "ok-token") || strings.Contains(err.Error(), "xxxx") {
				t.Errorf("error quotes the file: %v", err)
			}
		})
	}
	if _, err := NewTokensFile(filepath.Join(dir, "missing"), nil); err == nil || !strings.Contains(err.Error(), "missing") {
		t.Errorf("missing file: %v", err)
	}
}

func TestTokensFileSubjectsAndSpaces(t *testing.T) {
	path := filepath.Join(t.TempDir(), "tokens")
	if err := os.WriteFile(path, []byte("# header\n  spaced-token  \r\nother\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	tf, err := NewTokensFile(path, nil)
	if err != nil {
		t.Fatal(err)
	}
	id, err := tf.Authenticate(context.Background(), "spaced-token")
	if err != nil {
		t.Fatal(err)
	}
	if id.Subject != "tokens:2" {
		t.Errorf("subject %q, want tokens:2 (file name and line)", id.Subject)
	}
	if _, err := tf.Authenticate(context.Background(), "  spaced-token  "); err == nil {
		t.Error("token with the surrounding spaces accepted")
	}
}
