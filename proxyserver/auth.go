package proxyserver

import (
	"bufio"
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/tessel/tessel-proxy/wire"
)

// Identity is who a tunnel authenticated as.
type Identity struct {
	Subject string    // for logs; never the token itself
	Expiry  time.Time // zero: never expires; else the server closes the tunnel at Expiry
}

// Authenticator decides whether a token may open a tunnel. Implementations compare in
// constant time and never put the token in an error.
type Authenticator interface {
	Authenticate(ctx context.Context, token string) (Identity, error)
}

// ErrTokenRefused is what the token authenticators here return for a token they do not
// accept. It never carries the token.
var ErrTokenRefused = errors.New("token refused")

// tokenDigest is the SHA-256 of a token. Tokens are held and compared only as digests, so
// that the comparison takes the same time wherever a guess differs, and a tokens file may
// list digests instead of the tokens themselves.
type tokenDigest [sha256.Size]byte

// tokenSet is a set of accepted token digests, each with the subject it logs as.
type tokenSet struct {
	digests  []tokenDigest
	subjects []string
}

// match compares digest against every entry in constant time, so that neither the position
// of a match nor the length of a common prefix shows in the time taken.
func (s *tokenSet) match(digest tokenDigest) (string, bool) {
	found := -1
	for i := range s.digests {
		if subtle.ConstantTimeCompare(s.digests[i][:], digest[:]) == 1 && found < 0 {
			found = i
		}
	}
	if found < 0 {
		return "", false
	}
	return s.subjects[found], true
}

// StaticAuthenticator accepts one fixed token (serve --auth-token, AUTH_HARDCODED).
type StaticAuthenticator struct {
	set tokenSet
}

// NewStaticAuthenticator returns an Authenticator for one fixed token. Identities it returns
// have Subject "static-token" and no expiry.
func NewStaticAuthenticator(token string) (*StaticAuthenticator, error) {
	if token == "" {
		return nil, errors.New("the auth token is empty")
	}
	if len(token) > wire.MaxTokenLen {
		return nil, fmt.Errorf("the auth token is %d bytes, more than the %d a client can send", len(token), wire.MaxTokenLen)
	}
	return &StaticAuthenticator{set: tokenSet{
		digests:  []tokenDigest{sha256.Sum256([]byte(token))},
		subjects: []string{"static-token"},
	}}, nil
}

// Authenticate implements Authenticator.
func (a *StaticAuthenticator) Authenticate(_ context.Context, token string) (Identity, error) {
	subject, ok := a.set.match(sha256.Sum256([]byte(token)))
	if !ok {
		return Identity{}, ErrTokenRefused
	}
	return Identity{Subject: subject}, nil
}

// TokensFile accepts the tokens listed in a file and notices when the file changes.
//
// The file has one entry a line: a token as is, or "sha256:" and the 64 hex digits of a
// token's SHA-256 digest (so the file need not hold the secret itself). Blank lines and
// lines starting with "#" are skipped; spaces around an entry are ignored. Identities have
// Subject "<file name>:<line number>" and no expiry.
//
// Each Authenticate compares the file's modification time, size and inode with the last
// load and reloads it when any differs. A reload that fails (unreadable file, malformed
// line) keeps the previous set and logs why; a file emptied of tokens is a valid reload that
// refuses everyone.
type TokensFile struct {
	path   string
	logger *slog.Logger

	mu     sync.Mutex
	set    tokenSet
	stamp  fileStamp
	broken fileStamp // the stamp of the last failed reload, so that it is logged once

	unreadable bool // the last stat failed (logged once)
}

// fileStamp identifies one version of a file: an edit changes the modification time or
// size, an atomic replacement (rename over it) changes the file itself.
type fileStamp struct {
	modTime time.Time
	size    int64
	info    os.FileInfo // for os.SameFile; nil in the zero stamp
}

func stampOf(fi os.FileInfo) fileStamp {
	return fileStamp{modTime: fi.ModTime(), size: fi.Size(), info: fi}
}

// same reports whether a and b are the same version of the same file.
func (a fileStamp) same(b fileStamp) bool {
	return a.info != nil && b.info != nil && a.modTime.Equal(b.modTime) && a.size == b.size && os.SameFile(a.info, b.info)
}

// NewTokensFile loads path. It fails when the file cannot be read, has a malformed line, or
// lists no token, so that a server never starts refusing everyone by mistake. logger (nil:
// discard) hears about reloads.
func NewTokensFile(path string, logger *slog.Logger) (*TokensFile, error) {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	f := &TokensFile{path: path, logger: logger}
	set, stamp, err := loadTokensFile(path)
	if err != nil {
		return nil, err
	}
	if len(set.digests) == 0 {
		return nil, fmt.Errorf("tokens file %s lists no token: add one token (or sha256:HEX) a line", path)
	}
	f.set, f.stamp = set, stamp
	return f, nil
}

// Authenticate implements Authenticator.
func (f *TokensFile) Authenticate(_ context.Context, token string) (Identity, error) {
	digest := sha256.Sum256([]byte(token))
	f.mu.Lock()
	f.reloadIfChanged()
	subject, ok := f.set.match(digest)
	f.mu.Unlock()
	if !ok {
		return Identity{}, ErrTokenRefused
	}
	return Identity{Subject: subject}, nil
}

// reloadIfChanged reloads the file when its stamp moved. f.mu is held.
func (f *TokensFile) reloadIfChanged() {
	fi, err := os.Stat(f.path)
	if err != nil {
		if !f.unreadable {
			f.logger.Error("tokens file unreadable; keeping the tokens loaded before", "file", f.path, "err", err)
			f.unreadable = true
		}
		return
	}
	f.unreadable = false
	stamp := stampOf(fi)
	if stamp.same(f.stamp) || stamp.same(f.broken) {
		return
	}
	set, stamp, err := loadTokensFile(f.path)
	if err != nil {
		f.broken = stamp
		f.logger.Error("tokens file reload failed; keeping the tokens loaded before", "file", f.path, "err", err)
		return
	}
	f.set, f.stamp, f.broken = set, stamp, fileStamp{}
	if len(set.digests) == 0 {
		f.logger.Warn("tokens file reloaded with no tokens; every tunnel will be refused", "file", f.path)
		return
	}
	f.logger.Info("tokens file reloaded", "file", f.path, "tokens", len(set.digests))
}

// loadTokensFile parses path. Errors name the line but never quote it: the line may be a
// token.
func loadTokensFile(path string) (tokenSet, fileStamp, error) {
	file, err := os.Open(path)
	if err != nil {
		return tokenSet{}, fileStamp{}, fmt.Errorf("tokens file: %w", err)
	}
	defer file.Close()
	fi, err := file.Stat()
	if err != nil {
		return tokenSet{}, fileStamp{}, fmt.Errorf("tokens file: %w", err)
	}
	stamp := stampOf(fi)
	var set tokenSet
	sc := bufio.NewScanner(file)
	sc.Buffer(make([]byte, 0, 4096), 2*wire.MaxTokenLen+64)
	base := filepath.Base(path)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		var digest tokenDigest
		if hexDigest, ok := strings.CutPrefix(line, "sha256:"); ok {
			b, err := hex.DecodeString(hexDigest)
			if err != nil || len(b) != sha256.Size {
				return tokenSet{}, stamp, fmt.Errorf("tokens file %s line %d: after sha256: put the 64 hex digits of the token's SHA-256 (sha256sum prints them)", path, n)
			}
			digest = tokenDigest(b)
		} else {
			if len(line) > wire.MaxTokenLen {
				return tokenSet{}, stamp, fmt.Errorf("tokens file %s line %d: token longer than %d bytes", path, n, wire.MaxTokenLen)
			}
			digest = sha256.Sum256([]byte(line))
		}
		set.digests = append(set.digests, digest)
		set.subjects = append(set.subjects, fmt.Sprintf("%s:%d", base, n))
	}
	if err := sc.Err(); err != nil {
		return tokenSet{}, stamp, fmt.Errorf("tokens file %s: %w", path, err)
	}
	return set, stamp, nil
}
