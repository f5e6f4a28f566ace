package oauth

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/zalando/go-keyring"

	"github.com/tessel/tessel-proxy/internal/atomicfile"
)

// Credentials are what login stores for a profile, as one JSON blob.
type Credentials struct {
	AccessToken  string    `json:"access_token"`
	RefreshToken string    `json:"refresh_token,omitempty"`
	Expiry       time.Time `json:"expiry,omitzero"` // zero: unknown or never
	Issuer       string    `json:"issuer,omitempty"`
	ClientID     string    `json:"client_id,omitempty"`
	Scopes       []string  `json:"scopes,omitempty"`
	Subject      string    `json:"subject,omitempty"`
	Account      string    `json:"account,omitempty"` // a name to show: email, preferred_username or subject
}

// ErrNotLoggedIn means no credentials are stored for the profile.
var ErrNotLoggedIn = errors.New("not logged in")

// Service is the keyring service name the credentials are stored under, one item per profile.
const Service = "tessel-proxy"

// DefaultKeyringTimeout bounds each keyring call. A locked keyring may show an unlock prompt, so
// this is seconds, not milliseconds.
const DefaultKeyringTimeout = 10 * time.Second

// Keyring stores credentials in the OS keyring (Secret Service on Linux, Keychain on macOS,
// Credential Manager on Windows).
type Keyring struct {
	Service string        // default Service
	Timeout time.Duration // default DefaultKeyringTimeout
}

// ErrKeyringTimeout means the keyring did not answer in time (a hung Secret Service).
var ErrKeyringTimeout = errors.New("the OS keyring did not answer in time")

// KeyringUnavailableError says that the OS keyring cannot be used, and what to do about it.
type KeyringUnavailableError struct{ Err error }

func (e *KeyringUnavailableError) Error() string {
	return fmt.Sprintf("the OS keyring is not available (%v). On Linux, a Secret Service must run "+
		"on the session D-Bus: install gnome-keyring (or KeePassXC with Secret Service enabled) and "+
		"log in to a desktop session, or start one with `dbus-run-session -- sh` and "+
		"`gnome-keyring-daemon --unlock --components=secrets`. Or log in with --insecure-storage "+
		"to keep the token in a file readable only by you", e.Err)
}

func (e *KeyringUnavailableError) Unwrap() error { return e.Err }

func (k Keyring) service() string {
	if k.Service == "" {
		return Service
	}
	return k.Service
}

// call runs f with a deadline. A call that overruns is abandoned: its goroutine ends whenever
// the keyring answers, which is harmless in a CLI that is about to exit.
func (k Keyring) call(f func() error) error {
	timeout := k.Timeout
	if timeout <= 0 {
		timeout = DefaultKeyringTimeout
	}
	done := make(chan error, 1)
	go func() { done <- f() }()
	t := time.NewTimer(timeout)
	defer t.Stop()
	select {
	case err := <-done:
		return err
	case <-t.C:
		return &KeyringUnavailableError{Err: fmt.Errorf("%w after %s", ErrKeyringTimeout, timeout)}
	}
}

// Load returns the profile's credentials, ErrNotLoggedIn when there are none, or a
// *KeyringUnavailableError.
func (k Keyring) Load(profile string) (*Credentials, error) {
	var secret string
	err := k.call(func() (err error) {
		secret, err = keyring.Get(k.service(), profile)
		return err
	})
	if errors.Is(err, keyring.ErrNotFound) {
		return nil, ErrNotLoggedIn
	}
	if err != nil {
		return nil, unavailable(err)
	}
	var c Credentials
	if err := json.Unmarshal([]byte(secret), &c); err != nil {
		return nil, fmt.Errorf("the keyring item %s/%s is not tessel-proxy credentials: log in again", k.service(), profile)
	}
	return &c, nil
}

// Save stores the profile's credentials, replacing any.
func (k Keyring) Save(profile string, c *Credentials) error {
	blob, err := json.Marshal(c)
	if err != nil {
		return err
	}
	err = k.call(func() error { return keyring.Set(k.service(), profile, string(blob)) })
	if err != nil {
		return unavailable(err)
	}
	return nil
}

// Delete removes the profile's credentials. Deleting what is not there is not an error.
func (k Keyring) Delete(profile string) error {
	err := k.call(func() error { return keyring.Delete(k.service(), profile) })
	if err != nil && !errors.Is(err, keyring.ErrNotFound) {
		return unavailable(err)
	}
	return nil
}

func unavailable(err error) error {
	var ku *KeyringUnavailableError
	if errors.As(err, &ku) {
		return err
	}
	return &KeyringUnavailableError{Err: err}
}

// File stores credentials in a JSON file readable only by its owner, one entry per profile. It
// is the opt-in fallback (--insecure-storage) for machines without a keyring: anyone who can
// read the file, or a backup of it, has the tokens.
type File struct {
	Path string
}

type fileContent struct {
	Profiles map[string]*Credentials `json:"profiles"`
}

func (f File) read() (fileContent, error) {
	content := fileContent{Profiles: map[string]*Credentials{}}
	b, err := os.ReadFile(f.Path)
	if errors.Is(err, os.ErrNotExist) {
		return content, nil
	}
	if err != nil {
		return content, err
	}
	if err := json.Unmarshal(b, &content); err != nil {
		return content, fmt.Errorf("%s is not a tessel-proxy credentials file: remove it and log in again", f.Path)
	}
	if content.Profiles == nil {
		content.Profiles = map[string]*Credentials{}
	}
	return content, nil
}

// write replaces the file atomically, created 0600 so the tokens are never readable by others,
// not even for a moment.
func (f File) write(content fileContent) error {
	if len(content.Profiles) == 0 {
		if err := os.Remove(f.Path); err != nil && !errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("remove %s: %w", f.Path, err)
		}
		return nil
	}
	b, err := json.MarshalIndent(content, "", "  ")
	if err != nil {
		return fmt.Errorf("write %s: %w", f.Path, err)
	}
	return atomicfile.WriteFile(f.Path, append(b, '\n'), 0o600)
}

// Load returns the profile's credentials or ErrNotLoggedIn.
func (f File) Load(profile string) (*Credentials, error) {
	content, err := f.read()
	if err != nil {
		return nil, err
	}
	c, ok := content.Profiles[profile]
	if !ok || c == nil {
		return nil, ErrNotLoggedIn
	}
	return c, nil
}

// update applies change to the file's content under the file's lock.
func (f File) update(change func(*fileContent) bool) error {
	return atomicfile.WithLock(f.Path, func() error {
		content, err := f.read()
		if err != nil {
			return err
		}
		if !change(&content) {
			return nil
		}
		return f.write(content)
	})
}

// Save stores the profile's credentials, replacing any.
func (f File) Save(profile string, c *Credentials) error {
	return f.update(func(content *fileContent) bool {
		content.Profiles[profile] = c
		return true
	})
}

// Delete removes the profile's credentials, and the file when no profile is left.
func (f File) Delete(profile string) error {
	if _, err := os.Stat(f.Path); errors.Is(err, os.ErrNotExist) {
		return nil
	}
	return f.update(func(content *fileContent) bool {
		if _, ok := content.Profiles[profile]; !ok {
			return false
		}
		delete(content.Profiles, profile)
		return true
	})
}

// Where the credentials in use were found.
const (
	SourceKeyring = "keyring"
	SourceFile    = "file"
)

// Stores is where login keeps credentials: the keyring, and the file only for profiles that
// were logged in with --insecure-storage.
type Stores struct {
	Keyring Keyring
	File    File
}

// Load looks in the keyring, then in the file. It returns the credentials and SourceKeyring or
// SourceFile. With nothing stored it returns ErrNotLoggedIn, wrapped together with the
// *KeyringUnavailableError when the keyring could not be asked.
func (s Stores) Load(profile string) (*Credentials, string, error) {
	c, kerr := s.Keyring.Load(profile)
	if kerr == nil {
		return c, SourceKeyring, nil
	}
	if !errors.Is(kerr, ErrNotLoggedIn) && !isUnavailable(kerr) {
		return nil, "", kerr
	}
	c, ferr := s.File.Load(profile)
	if ferr == nil {
		return c, SourceFile, nil
	}
	if !errors.Is(ferr, ErrNotLoggedIn) {
		return nil, "", ferr
	}
	if isUnavailable(kerr) {
		return nil, "", fmt.Errorf("%w (profile %s); besides, %w", ErrNotLoggedIn, profile, kerr)
	}
	return nil, "", fmt.Errorf("%w (profile %s)", ErrNotLoggedIn, profile)
}

// Save stores c where source says (SourceKeyring or SourceFile) and removes the profile from
// the other store: a plain-text token must not linger in the file, and an older login left
// in the keyring would hide the new one in the file, since Load looks in the keyring first.
func (s Stores) Save(profile, source string, c *Credentials) error {
	if source == SourceFile {
		if err := s.File.Save(profile, c); err != nil {
			return err
		}
		// A keyring that cannot be reached cannot hide the file either.
		if err := s.Keyring.Delete(profile); err != nil && !isUnavailable(err) {
			return err
		}
		return nil
	}
	if err := s.Keyring.Save(profile, c); err != nil {
		return err
	}
	return s.File.Delete(profile)
}

// Delete removes the profile from both stores. It reports whether anything was removed.
func (s Stores) Delete(profile string) (bool, error) {
	removed := false
	if _, err := s.Keyring.Load(profile); err == nil {
		if err := s.Keyring.Delete(profile); err != nil {
			return false, err
		}
		removed = true
	}
	if _, err := s.File.Load(profile); err == nil {
		if err := s.File.Delete(profile); err != nil {
			return removed, err
		}
		removed = true
	}
	return removed, nil
}

func isUnavailable(err error) bool {
	var ku *KeyringUnavailableError
	return errors.As(err, &ku)
}

// withRefreshLock runs fn holding the lock that serialises refreshes of stored credentials,
// across processes: a file lock beside the credentials file (File.Path), which is in the
// config directory whether the credentials are in the keyring or in the file. Without a
// File.Path, fn runs unlocked.
func (s Stores) withRefreshLock(fn func() error) error {
	if s.File.Path == "" {
		return fn()
	}
	return atomicfile.WithLock(s.File.Path+".refresh", fn)
}
