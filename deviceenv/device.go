// Package deviceenv manages devices, the machines a program will run on with the tunnel:
// this machine (local) or a Linux device reached over ssh. It keeps the registry of named
// devices and reads and writes each device's env file, validating every PROXY_* value through
// proxyconfig before anything is written.
package deviceenv

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"

	"github.com/tessel/tessel-proxy/internal/atomicfile"
	"github.com/tessel/tessel-proxy/internal/hostport"
	"github.com/tessel/tessel-proxy/proxyconfig"
)

// LocalName is the built-in device that stands for this machine.
const LocalName = "local"

// Address is where a device's env file lives: this machine, or a machine reached over ssh.
type Address struct {
	Local bool
	User  string // ssh login user; "" = ssh's own choice (ssh_config, then the local user)
	Host  string // host name, ssh_config alias or IP address (IPv6 without brackets)
	Port  int    // 0 = ssh's own choice
	// Path of the env file on the device. "" = the default there,
	// ${XDG_CONFIG_HOME:-$HOME/.config}/tessel-proxy/env; a path starting with ~/ is in the
	// remote user's home; other relative paths are relative to the login directory.
	Path string
}

// ParseAddress parses "local" or ssh://[user@]host[:port][/path]. In the path, /~/x means x in
// the remote home (as in git's ssh URLs); spaces may be written as is or as %20.
func ParseAddress(s string) (Address, error) {
	if s == LocalName {
		return Address{Local: true}, nil
	}
	if !strings.HasPrefix(s, "ssh://") {
		return Address{}, fmt.Errorf("device address %q: use local or ssh://[user@]host[:port][/path/to/env]", s)
	}
	rest := strings.TrimPrefix(s, "ssh://")
	authority, path, hasPath := strings.Cut(rest, "/")
	u, err := url.Parse("ssh://" + authority)
	if err != nil || u.Hostname() == "" || u.Opaque != "" {
		return Address{}, fmt.Errorf("device address %q: missing or malformed host; use ssh://[user@]host[:port][/path/to/env]", s)
	}
	// Before the path, ? and # would start a URL query or fragment, which an ssh address
	// has none of: refuse rather than drop them.
	if u.RawQuery != "" || u.ForceQuery || u.Fragment != "" || strings.HasSuffix(authority, "#") {
		return Address{}, fmt.Errorf("device address %q: ? and # have no meaning in an ssh address; write ssh://[user@]host[:port][/path/to/env]", s)
	}
	a := Address{Host: u.Hostname()}
	if u.User != nil {
		if _, hasPassword := u.User.Password(); hasPassword {
			return Address{}, fmt.Errorf("device address %q: passwords do not belong in the address; use an ssh key (--identity) or an agent", redactUserinfo(s))
		}
		a.User = u.User.Username()
		if a.User == "" || strings.HasPrefix(a.User, "-") {
			return Address{}, fmt.Errorf("device address %q: bad user name", s)
		}
	}
	if p := u.Port(); p != "" {
		n, ok := hostport.ParsePort(p)
		if !ok {
			return Address{}, fmt.Errorf("device address %q: port %q is not 1-65535", s, p)
		}
		a.Port = int(n)
	}
	if strings.HasPrefix(a.Host, "-") || strings.ContainsAny(a.Host, " \t\r\n'\"\\@") {
		return Address{}, fmt.Errorf("device address %q: %q is not a host name", s, a.Host)
	}
	if strings.Contains(u.Host, "[") {
		if _, err := netip.ParseAddr(a.Host); err != nil {
			return Address{}, fmt.Errorf("device address %q: %q in brackets is not an IPv6 address", s, a.Host)
		}
	}
	if hasPath && path != "" {
		p, err := url.PathUnescape(path)
		if err != nil {
			return Address{}, fmt.Errorf("device address %q: bad %%-escape in the path", s)
		}
		switch {
		case p == "~":
			return Address{}, fmt.Errorf("device address %q: the path names the home directory, not an env file", s)
		case strings.HasPrefix(p, "~/"):
			a.Path = p
		default:
			a.Path = "/" + p
		}
		if strings.ContainsAny(a.Path, "\n\x00") {
			return Address{}, fmt.Errorf("device address %q: the path contains a line break", s)
		}
		if strings.HasSuffix(a.Path, "/") {
			return Address{}, fmt.Errorf("device address %q: the path names a directory; end it with the env file's name", s)
		}
	}
	return a, nil
}

func redactUserinfo(s string) string {
	rest := strings.TrimPrefix(s, "ssh://")
	if at := strings.LastIndex(strings.SplitN(rest, "/", 2)[0], "@"); at >= 0 {
		return "ssh://…" + rest[at:]
	}
	return s
}

// String returns the address in the form ParseAddress reads.
func (a Address) String() string {
	if a.Local {
		return LocalName
	}
	var b strings.Builder
	b.WriteString("ssh://")
	if a.User != "" {
		b.WriteString(url.PathEscape(a.User) + "@")
	}
	b.WriteString(hostport.Bracket(a.Host))
	if a.Port != 0 {
		b.WriteString(":" + strconv.Itoa(a.Port))
	}
	if a.Path != "" {
		p := a.Path
		if strings.HasPrefix(p, "~/") {
			p = "/" + p
		}
		b.WriteString(strings.ReplaceAll(p, " ", "%20"))
	}
	return b.String()
}

// Device is a named place where programs run with the tunnel, as `device add` records it.
type Device struct {
	Name       string   `json:"name"`
	Address    string   `json:"address"`               // "local" or ssh://...
	Identity   string   `json:"identity,omitempty"`    // ssh -i, an absolute local path
	SSHOptions []string `json:"ssh_options,omitempty"` // ssh -o KEY=VALUE, in order
}

var deviceNameRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$`)

// CheckDeviceName reports whether name can name a device.
func CheckDeviceName(name string) error {
	if !deviceNameRE.MatchString(name) {
		return fmt.Errorf("device name %q: use up to 64 letters, digits, '.', '_' or '-', starting with a letter or digit", name)
	}
	return nil
}

var sshOptionRE = regexp.MustCompile(`^[A-Za-z][A-Za-z0-9]*=[^\n\x00]*$`)

// CheckSSHOption reports whether opt is an ssh -o option in KEY=VALUE form.
func CheckSSHOption(opt string) error {
	if !sshOptionRE.MatchString(opt) {
		return fmt.Errorf("ssh option %q: write it as KEY=VALUE, e.g. ProxyJump=bastion or ConnectTimeout=5", opt)
	}
	return nil
}

// Registry is the list of devices and the default one, kept as JSON in the configuration
// directory.
type Registry struct {
	Default string            `json:"default,omitempty"`
	Devices map[string]Device `json:"devices"`
}

// DefaultRegistryPath returns ${XDG_CONFIG_HOME:-$HOME/.config}/tessel-proxy/devices.json.
func DefaultRegistryPath(env proxyconfig.Lookup) (string, error) {
	dir, err := proxyconfig.ConfigDir(env)
	if err != nil {
		return "", err
	}
	return filepath.Join(dir, "devices.json"), nil
}

// LoadRegistry reads the registry at path. A missing file is an empty registry.
func LoadRegistry(path string) (*Registry, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return &Registry{Devices: map[string]Device{}}, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read device list: %w", err)
	}
	var r Registry
	if err := json.Unmarshal(b, &r); err != nil {
		return nil, fmt.Errorf("device list %s is not valid JSON (%v); fix or remove it", path, err)
	}
	if r.Devices == nil {
		r.Devices = map[string]Device{}
	}
	for name, d := range r.Devices {
		d.Name = name
		r.Devices[name] = d
	}
	return &r, nil
}

// UpdateRegistry changes the registry at path under a file lock and writes it atomically, so
// that two commands changing devices at once do not lose either change.
func UpdateRegistry(path string, change func(*Registry) error) error {
	return atomicfile.WithLock(path, func() error {
		r, err := LoadRegistry(path)
		if err != nil {
			return err
		}
		if err := change(r); err != nil {
			return err
		}
		b, err := json.MarshalIndent(r, "", "  ")
		if err != nil {
			return err
		}
		return atomicfile.WriteFile(path, append(b, '\n'), 0o600)
	})
}

// Names returns the names of the registered devices, sorted. The built-in "local" is not
// among them.
func (r *Registry) Names() []string {
	names := make([]string, 0, len(r.Devices))
	for n := range r.Devices {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// DefaultName is the device used without --device or $TESSEL_DEVICE: the registry default,
// else local.
func (r *Registry) DefaultName() string {
	if r.Default == "" {
		return LocalName
	}
	return r.Default
}

// Resolve finds the device to use: name if given, else the registry default, else local.
// A name that is not registered but is an ssh:// address is used as an unnamed device.
func (r *Registry) Resolve(name string) (Device, error) {
	if name == "" {
		name = r.DefaultName()
	}
	if name == LocalName {
		return Device{Name: LocalName, Address: LocalName}, nil
	}
	if d, ok := r.Devices[name]; ok {
		return d, nil
	}
	if strings.HasPrefix(name, "ssh://") {
		if _, err := ParseAddress(name); err != nil {
			return Device{}, err
		}
		return Device{Name: name, Address: name}, nil
	}
	return Device{}, fmt.Errorf("no device named %q; see `tessel-proxy device list`, or add it with `tessel-proxy device add %s ssh://user@host`", name, name)
}
