package commands

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/tessel/tessel-proxy/deviceenv"
	"github.com/tessel/tessel-proxy/proxyconfig"
)

func TestDeviceCommands(t *testing.T) {
	f := newEnvFixture(t)
	key := filepath.Join(t.TempDir(), "id_test")
	os.WriteFile(key, []byte("not really a key"), 0o600)

	// Flags may follow the positional arguments, as in the usage line.
	f.ok("", "device", "add", "pi", "ssh://pi@raspberrypi.local/~/tessel%20env", "--identity", key,
		"--ssh-option", "ConnectTimeout=5", "--ssh-option=ProxyJump=bastion")
	f.ok("", "device", "add", "--identity", key, "gw", "ssh://root@[2001:db8::7]:2222/etc/tessel-proxy/env")

	list := f.ok("", "device", "list")
	for _, want := range []string{"NAME", "local", "pi", "ssh://pi@raspberrypi.local/~/tessel%20env", "gw", "ssh://root@[2001:db8::7]:2222/etc/tessel-proxy/env"} {
		if !strings.Contains(list, want) {
			t.Errorf("device list lacks %q:\n%s", want, list)
		}
	}
	if def := strings.TrimSpace(f.ok("", "device", "default")); def != "local" {
		t.Errorf("default before any is set = %q, want local", def)
	}
	f.ok("", "device", "default", "pi")
	var entries []deviceEntry
	if err := json.Unmarshal([]byte(f.ok("", "device", "list", "--json")), &entries); err != nil {
		t.Fatal(err)
	}
	if len(entries) != 3 || entries[0].Name != "local" || entries[0].Default {
		t.Fatalf("device list --json: %+v", entries)
	}
	var pi deviceEntry
	for _, e := range entries {
		if e.Name == "pi" {
			pi = e
		}
	}
	if !pi.Default || pi.Identity != key || strings.Join(pi.SSHOptions, ",") != "ConnectTimeout=5,ProxyJump=bastion" {
		t.Errorf("pi as listed: %+v", pi)
	}

	// Completions read the same registry.
	path, _ := deviceenv.DefaultRegistryPath(f.vars2lookup())
	reg, err := deviceenv.LoadRegistry(path)
	if err != nil || strings.Join(reg.Names(), " ") != "gw pi" {
		t.Errorf("registry names: %v, %v", reg.Names(), err)
	}

	f.ok("", "device", "remove", "pi")
	if def := strings.TrimSpace(f.ok("", "device", "default")); def != "local" {
		t.Errorf("removing the default device left default %q", def)
	}

	f.fails(1, "already exists", "device", "add", "gw", "ssh://other")
	f.fails(2, "built in", "device", "add", "local", "ssh://h")
	f.fails(2, "device name", "device", "add", "bad name", "ssh://h")
	f.fails(2, "ssh://", "device", "add", "x", "pi@host")
	f.fails(2, "passwords", "device", "add", "x", "ssh://u:pw@host")
	f.fails(2, "KEY=VALUE", "device", "add", "x", "ssh://h", "--ssh-option", "-oProxyCommand")
	f.fails(2, "no such file", "device", "add", "x", "ssh://h", "--identity", "/nonexistent/key")
	f.fails(2, "NAME and ADDRESS", "device", "add", "x")
	f.fails(2, `no device named "nosuch"`, "device", "remove", "nosuch")
	f.fails(2, `no device named "nosuch"`, "device", "default", "nosuch")
	f.fails(2, "built in", "device", "remove", "local")
	f.fails(2, "not defined", "device", "list", "--bogus")
}

func (f *envFixture) vars2lookup() proxyconfig.Lookup {
	return func(k string) (string, bool) { v, ok := f.vars[k]; return v, ok }
}
