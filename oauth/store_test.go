package oauth

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// testKeyring is the real Secret Service under a service name of the test's own, so that tests
// never touch a user's tessel-proxy logins.
func testKeyring(t *testing.T) Keyring {
	t.Helper()
	requireSecretService(t)
	k := Keyring{Service: "tessel-proxy-test-" + randomString()[:12], Timeout: 10 * time.Second}
	t.Cleanup(func() {
		for _, p := range []string{DefaultProfile, "work"} {
			_ = k.Delete(p)
		}
	})
	return k
}

var sample = &Credentials{
	AccessToken: "at-1", RefreshToken: "rt-1", Expiry: time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC),
	Issuer: "https://login.example.test", ClientID: "tessel-proxy", Subject: "alice", Account: "alice@example.test",
}

func TestKeyringRoundTrip(t *testing.T) {
	k := testKeyring(t)
	if _, err := k.Load(DefaultProfile); !errors.Is(err, ErrNotLoggedIn) {
		t.Fatalf("Load before Save: %v, want ErrNotLoggedIn", err)
	}
	if err := k.Save(DefaultProfile, sample); err != nil {
		t.Fatal(err)
	}
	work := *sample
	work.AccessToken, work.Subject = "at-work", "bob"
	if err := k.Save("work", &work); err != nil {
		t.Fatal(err)
	}
	got, err := k.Load(DefaultProfile)
	if err != nil {
		t.Fatal(err)
	}
	if got.AccessToken != "at-1" || got.RefreshToken != "rt-1" || !got.Expiry.Equal(sample.Expiry) ||
		got.Issuer != sample.Issuer || got.Subject != "alice" {
		t.Errorf("loaded %+v, want %+v", got, sample)
	}
	if got, _ := k.Load("work"); got == nil || got.AccessToken != "at-work" {
		t.Errorf("profile work: %+v", got)
	}
	// The blob is visible to the desktop's own tools under service "…"/profile.
	out, err := exec.Command("secret-tool", "lookup", "service", k.Service, "username", "work").Output()
	if err != nil {
		t.Fatalf("secret-tool lookup (install libsecret-tools): %v", err)
	}
	if !strings.Contains(string(out), `"access_token":"at-work"`) {
		t.Errorf("secret-tool sees %q", out)
	}
	if err := k.Delete(DefaultProfile); err != nil {
		t.Fatal(err)
	}
	if _, err := k.Load(DefaultProfile); !errors.Is(err, ErrNotLoggedIn) {
		t.Errorf("Load after Delete: %v", err)
	}
	if err := k.Delete(DefaultProfile); err != nil {
		t.Errorf("second Delete: %v", err)
	}
}

func TestKeyringTimeout(t *testing.T) {
	release := make(chan struct{})
	defer close(release)
	k := Keyring{Timeout: 20 * time.Millisecond}
	err := k.call(func() error { <-release; return nil }) // a Secret Service that never answers
	if !errors.Is(err, ErrKeyringTimeout) || !isUnavailable(err) {
		t.Fatalf("err = %v, want ErrKeyringTimeout as KeyringUnavailableError", err)
	}
}

// Without a session bus the keyring fails at once; the message says what to install or start.
// godbus keeps its first connection for the process, so this runs in a child process.
func TestKeyringUnavailable(t *testing.T) {
	if os.Getenv("TESSEL_PROXY_TEST_NO_BUS") == "1" {
		err := Keyring{}.Save("default", sample)
		if err == nil {
			t.Fatal("Save succeeded without a D-Bus session")
		}
		var ku *KeyringUnavailableError
		for _, want := range []string{"gnome-keyring", "dbus-run-session", "--insecure-storage"} {
			if !errors.As(err, &ku) || !strings.Contains(err.Error(), want) {
				t.Errorf("error %q does not mention %q", err, want)
			}
		}
		return
	}
	cmd := exec.Command(os.Args[0], "-test.run=^TestKeyringUnavailable$", "-test.count=1")
	cmd.Env = append(os.Environ(), "TESSEL_PROXY_TEST_NO_BUS=1",
		"DBUS_SESSION_BUS_ADDRESS=unix:path="+filepath.Join(t.TempDir(), "no-bus"))
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
}

func TestFileStore(t *testing.T) {
	path := filepath.Join(t.TempDir(), "cfg", "tessel-proxy", "credentials.json")
	f := File{Path: path}
	if _, err := f.Load(DefaultProfile); !errors.Is(err, ErrNotLoggedIn) {
		t.Fatalf("Load of a missing file: %v", err)
	}
	if err := f.Save(DefaultProfile, sample); err != nil {
		t.Fatal(err)
	}
	if err := f.Save("work", &Credentials{AccessToken: "at-work"}); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("file mode %v, want 0600", fi.Mode().Perm())
	}
	if got, err := f.Load(DefaultProfile); err != nil || got.RefreshToken != "rt-1" {
		t.Errorf("Load = %+v, %v", got, err)
	}
	if err := f.Delete(DefaultProfile); err != nil {
		t.Fatal(err)
	}
	if got, err := f.Load("work"); err != nil || got.AccessToken != "at-work" {
		t.Errorf("other profile after Delete: %+v, %v", got, err)
	}
	if err := f.Delete("work"); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(path); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("file left behind after the last profile was deleted: %v", err)
	}
	if err := os.WriteFile(path, []byte("garbage"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := f.Load(DefaultProfile); err == nil || !strings.Contains(err.Error(), "remove it and log in again") {
		t.Errorf("Load of a corrupt file: %v", err)
	}
}

func TestStoresPreferKeyringAndMoveOffFile(t *testing.T) {
	s := Stores{Keyring: testKeyring(t), File: File{Path: filepath.Join(t.TempDir(), "credentials.json")}}
	if err := s.Save(DefaultProfile, SourceFile, sample); err != nil {
		t.Fatal(err)
	}
	if _, src, err := s.Load(DefaultProfile); err != nil || src != SourceFile {
		t.Fatalf("Load = %q, %v, want file", src, err)
	}
	// Logging in again with the keyring takes the token out of the plain-text file.
	if err := s.Save(DefaultProfile, SourceKeyring, sample); err != nil {
		t.Fatal(err)
	}
	if _, src, err := s.Load(DefaultProfile); err != nil || src != SourceKeyring {
		t.Fatalf("Load = %q, %v, want keyring", src, err)
	}
	if _, err := s.File.Load(DefaultProfile); !errors.Is(err, ErrNotLoggedIn) {
		t.Errorf("token still in the file after saving to the keyring: %v", err)
	}
	if removed, err := s.Delete(DefaultProfile); err != nil || !removed {
		t.Fatalf("Delete = %v, %v", removed, err)
	}
	if _, _, err := s.Load(DefaultProfile); !errors.Is(err, ErrNotLoggedIn) {
		t.Errorf("Load after Delete: %v", err)
	}
}

// A login with --insecure-storage after one into the keyring is the login in use: the old
// keyring item, which Load would find first, goes.
func TestStoresFileLoginReplacesKeyringLogin(t *testing.T) {
	s := Stores{Keyring: testKeyring(t), File: File{Path: filepath.Join(t.TempDir(), "credentials.json")}}
	if err := s.Save("work", SourceKeyring, sample); err != nil {
		t.Fatal(err)
	}
	newer := *sample
	newer.AccessToken = "at-2"
	if err := s.Save("work", SourceFile, &newer); err != nil {
		t.Fatal(err)
	}
	c, src, err := s.Load("work")
	if err != nil || src != SourceFile || c.AccessToken != "at-2" {
		t.Fatalf("Load after a file login = %+v from %q, %v; want at-2 from the file", c, src, err)
	}
	if _, err := s.Keyring.Load("work"); !errors.Is(err, ErrNotLoggedIn) {
		t.Errorf("the older login is still in the keyring: %v", err)
	}
}

// Concurrent updates (say, two programs refreshing different profiles) lose nothing.
func TestFileStoreConcurrentSaves(t *testing.T) {
	path := filepath.Join(t.TempDir(), "credentials.json")
	var wg sync.WaitGroup
	for i := range 20 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := (File{Path: path}).Save(fmt.Sprint("p", i), &Credentials{AccessToken: fmt.Sprint("t", i)}); err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	for i := range 20 {
		if c, err := (File{Path: path}).Load(fmt.Sprint("p", i)); err != nil || c.AccessToken != fmt.Sprint("t", i) {
			t.Errorf("profile p%d: %+v, %v", i, c, err)
		}
	}
}
