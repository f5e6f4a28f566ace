package deviceenv

import (
	"context"

	"github.com/tessel/tessel-proxy/internal/atomicfile"
	"github.com/tessel/tessel-proxy/proxyconfig"
)

// Store is the env file of one device. Update is a read-modify-write under a lock on the
// device, so concurrent updates of different keys all land; the file is replaced atomically,
// so a reader sees the old file or the new one, never a mix.
type Store interface {
	// Read returns the variables in the env file (empty when there is none).
	Read(ctx context.Context) (map[string]string, error)
	// Update calls change with the current variables and writes what it leaves in the map.
	// When change returns an error, nothing is written and Update returns that error.
	Update(ctx context.Context, change func(vars map[string]string) error) error
	// Remote reports whether the file lives on another machine.
	Remote() bool
	// String names the device and the file, for messages.
	String() string
}

// OpenStore returns the env file store of dev. env supplies HOME/XDG_CONFIG_HOME for the
// local file and TESSEL_PROXY_SSH_COMMAND for ssh.
func OpenStore(dev Device, env proxyconfig.Lookup) (Store, error) {
	addr, err := ParseAddress(dev.Address)
	if err != nil {
		return nil, err
	}
	if addr.Local {
		path, err := proxyconfig.DefaultEnvPath(env)
		if err != nil {
			return nil, err
		}
		return &FileStore{Path: path}, nil
	}
	return newSSHStore(dev, addr, env)
}

// FileStore is an env file on this machine.
type FileStore struct {
	Path string
}

// Remote is false: the file is on this machine.
func (s *FileStore) Remote() bool { return false }

func (s *FileStore) String() string { return "local (" + s.Path + ")" }

// Read returns the variables in the file; a missing file has none.
func (s *FileStore) Read(context.Context) (map[string]string, error) {
	return ReadEnvFile(s.Path)
}

// Update changes the file under an flock on Path+".lock" and replaces it atomically, mode 0600.
func (s *FileStore) Update(_ context.Context, change func(map[string]string) error) error {
	return atomicfile.WithLock(s.Path, func() error {
		vars, err := ReadEnvFile(s.Path)
		if err != nil {
			return err
		}
		if err := change(vars); err != nil {
			return err
		}
		text, err := FormatEnv(vars)
		if err != nil {
			return err
		}
		return atomicfile.WriteFile(s.Path, text, 0o600)
	})
}
