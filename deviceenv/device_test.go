package deviceenv

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"testing"

	"github.com/tessel/tessel-proxy/internal/testcert"
	"github.com/tessel/tessel-proxy/proxyconfig"
)

func TestParseAddress(t *testing.T) {
	tests := []struct {
		in   string
		want Address
		err  string
	}{
		{"local", Address{Local: true}, ""},
		{"ssh://pi.local", Address{Host: "pi.local"}, ""},
		{"ssh://pi@pi.local", Address{User: "pi", Host: "pi.local"}, ""},
		{"ssh://pi@192.0.2.5:2222", Address{User: "pi", Host: "192.0.2.5", Port: 2222}, ""},
		{"ssh://root@[2001:db8::1]:22/etc/tessel/env", Address{User: "root", Host: "2001:db8::1", Port: 22, Path: "/etc/tessel/env"}, ""},
		{"ssh://h/~/my%20env", Address{Host: "h", Path: "~/my env"}, ""},
		{"ssh://h/~/a dir/env", Address{Host: "h", Path: "~/a dir/env"}, ""},
		{"ssh://h/", Address{Host: "h"}, ""},
		{"ssh://bastion-alias", Address{Host: "bastion-alias"}, ""},
		{"pi@host", Address{}, "ssh://"},
		{"ssh://", Address{}, "host"},
		{"ssh://h:0", Address{}, "1-65535"},
		{"ssh://h:99999", Address{}, "1-65535"},
		{"ssh://u:secret@h", Address{}, "passwords"},
		{"ssh://-oProxyCommand=x", Address{}, "not a host name"},
		{"ssh://h/~", Address{}, "home directory"},
		{"ssh://h/etc/", Address{}, "directory"},
		{"ssh://[nothex]/x", Address{}, "host"},
		{"ssh://:22", Address{}, "host"},
		{"ssh://pi@:22/env", Address{}, "host"},
		{"ssh://h?x=1", Address{}, "? and #"},
		{"ssh://h?", Address{}, "? and #"},
		{"ssh://h#frag", Address{}, "? and #"},
		{"ssh://h#", Address{}, "? and #"},
		{"ssh://h/env?x", Address{Host: "h", Path: "/env?x"}, ""},
	}
	for _, tt := range tests {
		got, err := ParseAddress(tt.in)
		if tt.err != "" {
			if err == nil || !strings.Contains(err.Error(), tt.err) {
				t.Errorf("ParseAddress(%q) error = %v, want one mentioning %q", tt.in, err, tt.err)
			}
			if err != nil && strings.Contains(err.Error(), "secret") {
				t.Errorf("error echoes a password: %v", err)
			}
			continue
		}
		if err != nil || got != tt.want {
			t.Errorf("ParseAddress(%q) = %+v, %v; want %+v", tt.in, got, err, tt.want)
			continue
		}
		// String gives an address that parses back to the same thing.
		again, err := ParseAddress(got.String())
		if err != nil || again != got {
			t.Errorf("ParseAddress(%q).String() = %q, which parses as %+v, %v", tt.in, got.String(), again, err)
		}
	}
}

func TestSplitCommandLine(t *testing.T) {
	tests := []struct {
		in   string
		want []string
		err  bool
	}{
		{"ssh", []string{"ssh"}, false},
		{"  ssh   -F  cfg ", []string{"ssh", "-F", "cfg"}, false},
		{`ssh -F '/tmp/a dir/config'`, []string{"ssh", "-F", "/tmp/a dir/config"}, false},
		{`ssh -F "/tmp/a \"q\" \$x"`, []string{"ssh", "-F", `/tmp/a "q" $x`}, false},
		{`ssh -F /tmp/a\ dir`, []string{"ssh", "-F", "/tmp/a dir"}, false},
		{`ssh -o 'ProxyCommand=nc %h %p'`, []string{"ssh", "-o", "ProxyCommand=nc %h %p"}, false},
		{`a''b ""`, []string{"ab", ""}, false},
		{`ssh 'unterminated`, nil, true},
		{`ssh "unterminated`, nil, true},
		{"   ", nil, true},
	}
	for _, tt := range tests {
		got, err := splitCommandLine(tt.in)
		if (err != nil) != tt.err || !reflect.DeepEqual(got, tt.want) {
			t.Errorf("splitCommandLine(%q) = %q, %v; want %q (error %v)", tt.in, got, err, tt.want, tt.err)
		}
	}
}

func TestSSHArgv(t *testing.T) {
	dev := Device{Name: "pi", Address: "ssh://pi@192.0.2.5:2222/~/env", Identity: "/keys/id", SSHOptions: []string{"ProxyJump=bastion"}}
	st, err := OpenStore(dev, lookupOf(SSHCommandVar, "ssh -F '/a b/config'"))
	if err != nil {
		t.Fatal(err)
	}
	argv := st.(*sshStore).argv
	want := []string{"ssh", "-F", "/a b/config", "-o", "BatchMode=yes", "-i", "/keys/id", "-o", "ProxyJump=bastion", "-p", "2222", "--", "pi@192.0.2.5"}
	if !reflect.DeepEqual(argv[:len(want)], want) {
		t.Errorf("argv = %q, want it to start %q", argv, want)
	}
	// The remote path travels on stdin, not in argv.
	if strings.Contains(strings.Join(argv, " "), "~/env") {
		t.Error("the env path is in argv")
	}
	if st.String() != "pi (ssh://pi@192.0.2.5:2222/~/env)" {
		t.Errorf("String = %q", st.String())
	}
}

func TestRegistry(t *testing.T) {
	path := filepath.Join(t.TempDir(), "tessel-proxy", "devices.json")
	r, err := LoadRegistry(path)
	if err != nil || len(r.Names()) != 0 {
		t.Fatalf("missing registry: %v, %v", r, err)
	}
	d, err := r.Resolve("")
	if err != nil || d.Name != LocalName {
		t.Errorf("Resolve with no default = %+v, %v; want local", d, err)
	}
	// Concurrent additions must all land.
	var wg sync.WaitGroup
	for i := 0; i < 16; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			err := UpdateRegistry(path, func(r *Registry) error {
				name := fmt.Sprintf("dev%02d", i)
				r.Devices[name] = Device{Name: name, Address: "ssh://h" + name}
				return nil
			})
			if err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	if err := UpdateRegistry(path, func(r *Registry) error { r.Default = "dev03"; return nil }); err != nil {
		t.Fatal(err)
	}
	r, err = LoadRegistry(path)
	if err != nil {
		t.Fatal(err)
	}
	if len(r.Names()) != 16 || r.Names()[0] != "dev00" {
		t.Errorf("Names = %v", r.Names())
	}
	if d, err := r.Resolve(""); err != nil || d.Address != "ssh://hdev03" || d.Name != "dev03" {
		t.Errorf("Resolve default = %+v, %v", d, err)
	}
	if d, err := r.Resolve("local"); err != nil || d.Address != "local" {
		t.Errorf("Resolve(local) = %+v, %v", d, err)
	}
	if d, err := r.Resolve("ssh://pi@h/x"); err != nil || d.Address != "ssh://pi@h/x" {
		t.Errorf("Resolve(address) = %+v, %v", d, err)
	}
	if _, err := r.Resolve("nosuch"); err == nil || !strings.Contains(err.Error(), "device add") {
		t.Errorf("Resolve(nosuch) = %v, want a hint to add it", err)
	}
	if fi, _ := os.Stat(path); fi.Mode().Perm() != 0o600 {
		t.Errorf("registry mode %v, want 0600", fi.Mode().Perm())
	}
	if err := os.WriteFile(path, []byte("{not json"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadRegistry(path); err == nil || !strings.Contains(err.Error(), path) {
		t.Errorf("corrupt registry: %v, want an error naming the file", err)
	}
}

func TestFileStoreParallelUpdates(t *testing.T) {
	path := filepath.Join(t.TempDir(), "cfg", "env")
	st := &FileStore{Path: path}
	var wg sync.WaitGroup
	for i := 0; i < 16; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := st.Update(context.Background(), setVars(map[string]string{fmt.Sprintf("K%d", i): "007"})); err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	m, err := st.Read(context.Background())
	if err != nil || len(m) != 16 || m["K7"] != "007" {
		t.Errorf("after 16 parallel updates: %q, %v", m, err)
	}
	if fi, _ := os.Stat(path); fi.Mode().Perm() != 0o600 {
		t.Errorf("env file mode %v, want 0600", fi.Mode().Perm())
	}
	assertNoLeftovers(t, filepath.Dir(path))
}

func lookupOf(kv ...string) proxyconfig.Lookup {
	m := map[string]string{}
	for i := 0; i < len(kv); i += 2 {
		m[kv[i]] = kv[i+1]
	}
	return proxyconfig.MapLookup(m)
}

func testCertPEM(t *testing.T) string { return string(testcert.New(t).PEM) }
