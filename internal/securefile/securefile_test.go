package securefile

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestWriteNew(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "key")
	if err := WriteNew(p, []byte("secret")); err != nil {
		t.Fatal(err)
	}
	fi, _ := os.Stat(p)
	if fi.Mode().Perm() != 0o600 {
		t.Fatalf("mode %04o", fi.Mode().Perm())
	}
	if err := WriteNew(p, []byte("other")); err == nil {
		t.Fatal("WriteNew replaced an existing file")
	}
	b, err := Read(p)
	if err != nil || string(b) != "secret" {
		t.Fatalf("Read = %q, %v", b, err)
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 1 {
		t.Fatalf("temporary files left: %d entries", len(entries))
	}
}

func TestEnsureDir(t *testing.T) {
	d := filepath.Join(t.TempDir(), "a", "b")
	if err := EnsureDir(d); err != nil {
		t.Fatal(err)
	}
	fi, _ := os.Stat(d)
	if fi.Mode().Perm() != 0o700 {
		t.Fatalf("mode %04o", fi.Mode().Perm())
	}
	os.Chmod(d, 0o750)
	if err := EnsureDir(d); err == nil || !strings.Contains(err.Error(), "chmod 700") {
		t.Fatalf("got %v", err)
	}
}
