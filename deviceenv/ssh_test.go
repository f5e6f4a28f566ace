package deviceenv

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"testing"

	"github.com/tessel/tessel-proxy/internal/shellquote"
	"github.com/tessel/tessel-proxy/internal/testsshd"
	"github.com/tessel/tessel-proxy/proxyconfig"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// sshFixture is a running sshd and a proxyconfig.Lookup that makes the store use its client config.
type sshFixture struct {
	srv *testsshd.Server
	env proxyconfig.Lookup
}

func newSSHFixture(t *testing.T, opts testsshd.Options) sshFixture {
	srv := testsshd.Start(t, opts)
	return sshFixture{srv: srv, env: lookupOf(SSHCommandVar, srv.SSHCommand)}
}

func (f sshFixture) store(t *testing.T, path string) *sshStore {
	t.Helper()
	st, err := OpenStore(Device{Name: "dev", Address: f.srv.Address(path)}, f.env)
	if err != nil {
		t.Fatal(err)
	}
	return st.(*sshStore)
}

func setVars(kv map[string]string) func(map[string]string) error {
	return func(vars map[string]string) error {
		for k, v := range kv {
			vars[k] = v
		}
		return nil
	}
}

func TestSSHStoreRoundTrip(t *testing.T) {
	for _, busybox := range []bool{false, true} {
		t.Run(map[bool]string{false: "sh with flock", true: "busybox sh, mkdir lock"}[busybox], func(t *testing.T) {
			f := newSSHFixture(t, testsshd.Options{BusyBox: busybox})
			// The remote machine is this one; a space in the path must survive every shell.
			path := filepath.Join(t.TempDir(), "dir with space", "env file")
			st := f.store(t, strings.ReplaceAll(path, " ", "%20"))
			ctx := context.Background()

			vars, err := st.Read(ctx)
			if err != nil || len(vars) != 0 {
				t.Fatalf("Read of a missing file = %v, %v; want empty", vars, err)
			}
			want := map[string]string{}
			for i, v := range trickyValues {
				if _, err := QuoteValue(v); err == nil {
					want[keyFor(i)] = v
				}
			}
			want["PROXY_CERT"] = testCertPEM(t)
			if err := st.Update(ctx, setVars(want)); err != nil {
				t.Fatal(err)
			}
			got, err := st.Read(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, want) {
				t.Errorf("read back differs:\n got %q\nwant %q", got, want)
			}
			fi, err := os.Stat(path)
			if err != nil {
				t.Fatalf("the env file is not where the address says: %v", err)
			}
			if fi.Mode().Perm() != 0o600 {
				t.Errorf("env file mode = %v, want 0600", fi.Mode().Perm())
			}
			local, err := ReadEnvFile(path)
			if err != nil || !reflect.DeepEqual(local, want) {
				t.Errorf("the file on the device parses differently: %v", err)
			}

			// Unset through Update, and an aborted Update writes nothing.
			if err := st.Update(ctx, func(v map[string]string) error { delete(v, "PROXY_CERT"); return nil }); err != nil {
				t.Fatal(err)
			}
			before, _ := os.ReadFile(path)
			abortErr := fmt.Errorf("changed my mind")
			if err := st.Update(ctx, func(v map[string]string) error { v["X"] = "1"; return abortErr }); err != abortErr {
				t.Errorf("aborted Update returned %v, want the change's own error", err)
			}
			after, _ := os.ReadFile(path)
			if string(before) != string(after) {
				t.Error("an aborted Update changed the file")
			}
			if _, ok := ReadEnvFileMust(t, path)["PROXY_CERT"]; ok {
				t.Error("PROXY_CERT still set after it was deleted")
			}
			assertNoLeftovers(t, filepath.Dir(path))
		})
	}
}

func ReadEnvFileMust(t *testing.T, path string) map[string]string {
	t.Helper()
	m, err := ReadEnvFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// assertNoLeftovers fails when a temporary file or a mkdir lock was left behind.
func assertNoLeftovers(t *testing.T, dir string) {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if strings.Contains(e.Name(), ".tmp") || strings.HasSuffix(e.Name(), ".lock.d") {
			t.Errorf("left behind in %s: %s", dir, e.Name())
		}
	}
}

func TestSSHStoreParallelUpdates(t *testing.T) {
	for _, busybox := range []bool{false, true} {
		t.Run(map[bool]string{false: "flock", true: "busybox mkdir lock"}[busybox], func(t *testing.T) {
			f := newSSHFixture(t, testsshd.Options{BusyBox: busybox})
			path := filepath.Join(t.TempDir(), "env")
			const n = 16
			var wg sync.WaitGroup
			errs := make([]error, n)
			for i := 0; i < n; i++ {
				wg.Add(1)
				go func() {
					defer wg.Done()
					st := f.store(t, path)
					errs[i] = st.Update(context.Background(), setVars(map[string]string{fmt.Sprintf("KEY_%02d", i): fmt.Sprint(i)}))
				}()
			}
			wg.Wait()
			for i, err := range errs {
				if err != nil {
					t.Errorf("update %d: %v", i, err)
				}
			}
			got := ReadEnvFileMust(t, path)
			for i := 0; i < n; i++ {
				if got[fmt.Sprintf("KEY_%02d", i)] != fmt.Sprint(i) {
					t.Errorf("KEY_%02d lost; file has %q", i, got)
				}
			}
			assertNoLeftovers(t, filepath.Dir(path))
		})
	}
}

func TestSSHStoreKilledTransferKeepsOldFile(t *testing.T) {
	for _, busybox := range []bool{false, true} {
		t.Run(map[bool]string{false: "flock", true: "busybox mkdir lock"}[busybox], func(t *testing.T) {
			f := newSSHFixture(t, testsshd.Options{BusyBox: busybox})
			path := filepath.Join(t.TempDir(), "env")
			ctx := context.Background()
			if err := f.store(t, path).Update(ctx, setVars(map[string]string{"OLD": "value"})); err != nil {
				t.Fatal(err)
			}
			old, _ := os.ReadFile(path)

			st := f.store(t, path)
			st.sendContent = func(stdin io.WriteCloser, content []byte, cmd *exec.Cmd) error {
				// Announce the whole file, send half of it, then the ssh client dies.
				fmt.Fprintf(stdin, "%d\n", len(content))
				stdin.Write(content[:len(content)/2])
				return cmd.Process.Kill()
			}
			err := st.Update(ctx, setVars(map[string]string{"NEW": strings.Repeat("x", 4000)}))
			if err == nil {
				t.Fatal("Update whose ssh was killed reported success")
			}
			if !strings.Contains(err.Error(), "device dev") {
				t.Errorf("error does not name the device: %v", err)
			}
			// The lock must be free again and the old file intact; a fresh update proves both
			// (it would wait for the lock for a minute and then fail otherwise).
			got, _ := os.ReadFile(path)
			if string(got) != string(old) {
				t.Errorf("the file changed after a killed transfer:\n%s", got)
			}
			if err := f.store(t, path).Update(ctx, setVars(map[string]string{"AFTER": "1"})); err != nil {
				t.Fatalf("update after the killed one: %v", err)
			}
			if m := ReadEnvFileMust(t, path); m["OLD"] != "value" || m["AFTER"] != "1" || m["NEW"] != "" {
				t.Errorf("after the killed transfer and a new update: %q", m)
			}
			assertNoLeftovers(t, filepath.Dir(path))
		})
	}
}

func TestSSHStoreRemotePaths(t *testing.T) {
	home := t.TempDir()
	xdg := t.TempDir()
	f := newSSHFixture(t, testsshd.Options{Env: map[string]string{"HOME": home, "XDG_CONFIG_HOME": xdg}})
	ctx := context.Background()
	tests := []struct {
		addrPath string // as written after host:port
		file     string // where it must land on the device
	}{
		{"", filepath.Join(xdg, "tessel-proxy", "env")},
		{"/~/my%20env", filepath.Join(home, "my env")},
		{"/~/sub dir/env", filepath.Join(home, "sub dir", "env")},
	}
	for _, tt := range tests {
		st := f.store(t, tt.addrPath)
		if err := st.Update(ctx, setVars(map[string]string{"WHERE": tt.addrPath})); err != nil {
			t.Fatalf("%q: %v", tt.addrPath, err)
		}
		if got := ReadEnvFileMust(t, tt.file)["WHERE"]; got != tt.addrPath {
			t.Errorf("address path %q: %s has WHERE=%q", tt.addrPath, tt.file, got)
		}
		if got, err := st.Read(ctx); err != nil || got["WHERE"] != tt.addrPath {
			t.Errorf("address path %q: Read = %q, %v", tt.addrPath, got, err)
		}
	}
}

func TestSSHStoreErrors(t *testing.T) {
	f := newSSHFixture(t, testsshd.Options{})
	ctx := context.Background()

	// Nothing listens on the port: ssh's own message must come through, with the device name.
	closed := fmt.Sprintf("ssh://%s@127.0.0.1:1/tmp/env", f.srv.User)
	st, err := OpenStore(Device{Name: "gone", Address: closed}, f.env)
	if err != nil {
		t.Fatal(err)
	}
	_, err = st.Read(ctx)
	if err == nil || !strings.Contains(err.Error(), "device gone") || !strings.Contains(err.Error(), "Connection refused") {
		t.Errorf("closed port: %v; want the device name and ssh's message", err)
	}
	if err != nil && strings.Contains(err.Error(), "\n") {
		t.Errorf("error spans lines: %q", err)
	}

	// No key the server accepts: BatchMode turns the password prompt into an error.
	noKeyConfig := filepath.Join(t.TempDir(), "config")
	cfg, _ := os.ReadFile(f.srv.ClientConfig)
	os.WriteFile(noKeyConfig, []byte(strings.ReplaceAll(string(cfg), "IdentityFile", "#")), 0o600)
	st, _ = OpenStore(Device{Name: "locked", Address: f.srv.Address("/tmp/x")}, lookupOf(SSHCommandVar, "ssh -F "+shellquote.Quote(noKeyConfig)+" -o IdentityAgent=none"))
	err = st.Update(ctx, setVars(map[string]string{"A": "1"}))
	if err == nil || !strings.Contains(err.Error(), "Permission denied") || !strings.Contains(err.Error(), "device locked") {
		t.Errorf("no key: %v; want ssh's Permission denied with the device name", err)
	}

	// --identity and --ssh-option reach ssh.
	id := filepath.Join(f.srv.Dir, "id_user")
	st, _ = OpenStore(Device{Name: "withid", Address: f.srv.Address(filepath.Join(t.TempDir(), "env")),
		Identity: id, SSHOptions: []string{"ConnectTimeout=5"}},
		lookupOf(SSHCommandVar, "ssh -F "+shellquote.Quote(noKeyConfig)+" -o IdentityAgent=none"))
	if err := st.Update(ctx, setVars(map[string]string{"A": "1"})); err != nil {
		t.Errorf("with --identity: %v", err)
	}

	// A broken TESSEL_PROXY_SSH_COMMAND is named.
	if _, err := OpenStore(Device{Name: "x", Address: f.srv.Address("")}, lookupOf(SSHCommandVar, "ssh -F 'unterminated")); err == nil || !strings.Contains(err.Error(), SSHCommandVar) {
		t.Errorf("bad %s: %v", SSHCommandVar, err)
	}
}

func TestRemoteScriptSurvivesAnyLoginShell(t *testing.T) {
	// The script travels inside single quotes through the remote login shell.
	if strings.ContainsAny(remoteScript, `'\`) {
		t.Error("remoteScript must not contain ' or \\")
	}
}

// BenchmarkSSHUpdate measures one `env set` round trip over ssh to a loopback sshd (a new
// ssh connection each time, as the command makes).
func BenchmarkSSHUpdate(b *testing.B) {
	srv := testsshd.Start(b, testsshd.Options{})
	st, err := OpenStore(Device{Name: "bench", Address: srv.Address(filepath.Join(b.TempDir(), "env"))},
		lookupOf(SSHCommandVar, srv.SSHCommand))
	if err != nil {
		b.Fatal(err)
	}
	for i := 0; i < b.N; i++ {
		if err := st.Update(context.Background(), setVars(map[string]string{"K": fmt.Sprint(i)})); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkFileUpdate measures one local `env set` (lock, read, fsync'd atomic write).
func BenchmarkFileUpdate(b *testing.B) {
	st := &FileStore{Path: filepath.Join(b.TempDir(), "env")}
	for i := 0; i < b.N; i++ {
		if err := st.Update(context.Background(), setVars(map[string]string{"K": fmt.Sprint(i)})); err != nil {
			b.Fatal(err)
		}
	}
}
