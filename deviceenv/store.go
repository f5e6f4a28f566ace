package deviceenv

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
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
func OpenStore(dev Device, env Lookup) (Store, error) {
	addr, err := ParseAddress(dev.Address)
	if err != nil {
		return nil, err
	}
	if addr.Local {
		path, err := DefaultEnvPath(env)
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
	return withFileLock(s.Path, func() error {
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
		return writeFileAtomic(s.Path, text)
	})
}

// withFileLock runs fn holding an exclusive flock on path+".lock", creating the directory.
// The lock is a separate file because path itself is replaced by rename.
func withFileLock(path string, fn func() error) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return fmt.Errorf("create %s: %w", filepath.Dir(path), err)
	}
	lock, err := os.OpenFile(path+".lock", os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return fmt.Errorf("lock %s: %w", path, err)
	}
	defer lock.Close()
	if err := lockFile(lock); err != nil {
		return fmt.Errorf("lock %s: %w", path, err)
	}
	defer unlockFile(lock) //nolint:errcheck // closing unlocks too
	return fn()
}

// writeFileAtomic writes data to a temporary file beside path (mode 0600), syncs it and
// renames it over path, so that a crash leaves the old file or the new one.
func writeFileAtomic(path string, data []byte) error {
	dir := filepath.Dir(path)
	tmp, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp*")
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	defer os.Remove(tmp.Name()) // no-op after the rename
	if err := tmp.Chmod(0o600); err != nil {
		tmp.Close()
		return fmt.Errorf("write %s: %w", path, err)
	}
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if d, err := os.Open(dir); err == nil {
		_ = d.Sync() // make the rename itself durable; best effort
		d.Close()
	}
	return nil
}
