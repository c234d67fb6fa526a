// Package securefile keeps onionchat's few files on disk (the onion key,
// client-auth public keys, the TLS certificate and key) private and whole:
// directories 0700, files 0600, created only if absent, written to a
// temporary file, synced and linked into place so that a crash or a full
// disk leaves either the complete file or none.
package securefile

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
)

// EnsureDir creates dir (and its parents) with mode 0700 if it is missing,
// and refuses an existing dir that others can read or that is not a
// directory.
func EnsureDir(dir string) error {
	fi, err := os.Stat(dir)
	if errors.Is(err, fs.ErrNotExist) {
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return fmt.Errorf("create %s: %w", dir, err)
		}
		fi, err = os.Stat(dir)
	}
	if err != nil {
		return err
	}
	if !fi.IsDir() {
		return fmt.Errorf("%s is not a directory", dir)
	}
	if perm := fi.Mode().Perm(); perm&0o077 != 0 {
		return fmt.Errorf("%s has mode %04o, so other users can read it; run: chmod 700 %s", dir, perm, dir)
	}
	return nil
}

// WriteNew writes data to path, which must not exist, with mode 0600. The
// data goes to a temporary file in the same directory first, which is
// synced and then linked to path, so path never holds a partial file;
// whatever happens, the temporary file is removed.
func WriteNew(path string, data []byte) (err error) {
	dir := filepath.Dir(path)
	tmp, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp*")
	if err != nil {
		return fmt.Errorf("create %s: %w", path, err)
	}
	defer os.Remove(tmp.Name())
	if err := tmp.Chmod(0o600); err != nil {
		tmp.Close()
		return fmt.Errorf("create %s: %w", path, err)
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
	if err := os.Link(tmp.Name(), path); err != nil {
		return fmt.Errorf("create %s: %w", path, err)
	}
	if d, err := os.Open(dir); err == nil {
		d.Sync()
		d.Close()
	}
	return nil
}

// Read reads path, refusing a file that other users can read.
func Read(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if perm := fi.Mode().Perm(); perm&0o077 != 0 {
		return nil, fmt.Errorf("%s has mode %04o, so other users can read it; run: chmod 600 %s", path, perm, path)
	}
	return io.ReadAll(io.LimitReader(f, maxRead))
}

// maxRead bounds Read: the files kept here are a few kilobytes.
const maxRead = 1 << 20
