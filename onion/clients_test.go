package onion

import (
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/onionchat/onionchat/internal/testing/need"
)

// TestCheckClients: every entry of authorized_clients that tor would skip
// with a warning is refused, and the error names the file.
func TestCheckClients(t *testing.T) {
	data := filepath.Join(t.TempDir(), "data")
	if names, keys, err := CheckClients(data); err != nil || len(names) != 0 || len(keys) != 0 {
		t.Fatalf("no directory: %v, %v, %v; want no keys", names, keys, err)
	}
	k, err := AddClient(data, "alice")
	if err != nil {
		t.Fatal(err)
	}
	kb, _ := AddClient(data, "bob")
	names, keys, err := CheckClients(data)
	if err != nil || strings.Join(names, ",") != "alice,bob" {
		t.Fatalf("CheckClients = %v, %v", names, err)
	}
	if len(keys) != 2 || keys["alice.auth"] != "descriptor:x25519:"+k.Public || keys["bob.auth"] != "descriptor:x25519:"+kb.Public {
		t.Fatalf("CheckClients' keys = %v; want alice's and bob's public keys as AddClient wrote them", keys)
	}
	dir := filepath.Join(data, ServiceDir, ClientsDir)
	good := "descriptor:x25519:" + k.Public + "\n"
	for _, c := range []struct {
		name string
		make func(path string) error
		why  string
	}{
		{"carol.auth", func(p string) error { return os.WriteFile(p, []byte("descriptor:x25519:AAAA\n"), 0o600) }, "52 base32"},
		{"carol.auth", func(p string) error { return os.WriteFile(p, []byte("descriptor:ed25519:"+k.Public), 0o600) }, "52 base32"},
		{"carol.auth", func(p string) error { return os.WriteFile(p, []byte(good+good), 0o600) }, "52 base32"},
		{"carol.auth", func(p string) error { return os.WriteFile(p, nil, 0o600) }, "52 base32"},
		{"carol.auth", func(p string) error { return os.Symlink(filepath.Join(dir, "alice.auth"), p) }, "carol.auth"},
		{"carol.auth", func(p string) error { return syscall.Mkfifo(p, 0o600) }, "not a regular file"},
		{"carol.auth", func(p string) error { return os.Mkdir(p, 0o700) }, "not a regular file"},
		{".alice.auth.tmp1", func(p string) error { return os.WriteFile(p, []byte(good), 0o600) }, "not a client key onionchat made"},
		{"carol", func(p string) error { return os.WriteFile(p, []byte(good), 0o600) }, "not a client key onionchat made"},
		{"bad name.auth", func(p string) error { return os.WriteFile(p, []byte(good), 0o600) }, "not a client key onionchat made"},
	} {
		p := filepath.Join(dir, c.name)
		if err := c.make(p); err != nil {
			t.Fatal(err)
		}
		_, _, err := CheckClients(data)
		if err == nil || !strings.Contains(err.Error(), p) || !strings.Contains(err.Error(), c.why) {
			t.Errorf("%s: got %v, want an error naming the file and %q", c.name, err, c.why)
		}
		os.RemoveAll(p)
	}
	os.Chmod(dir, 0o750)
	if _, _, err := CheckClients(data); err == nil || !strings.Contains(err.Error(), "chmod 700 "+dir) {
		t.Errorf("a group-readable directory: %v", err)
	}
	os.Chmod(dir, 0o700)
	if _, _, err := CheckClients(data); err != nil {
		t.Fatalf("after the clean-up: %v", err)
	}
}

// TestAddClientOwnedLikeDataDir: "sudo onionchat auth add" for a service
// user's data directory leaves files that user owns, so that its tor can
// read them (issue 13: a root-owned alice.auth left the service open).
func TestAddClientOwnedLikeDataDir(t *testing.T) {
	if os.Geteuid() != 0 {
		need.Missing(t, "root, to hand files to another user")
	}
	const uid, gid = 61234, 61235
	data := filepath.Join(t.TempDir(), "data")
	if err := os.Mkdir(data, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(data, uid, gid); err != nil {
		t.Fatal(err)
	}
	if _, err := AddClient(data, "alice"); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{
		filepath.Join(data, ServiceDir), filepath.Join(data, ServiceDir, SecretKeyFile), filepath.Join(data, ServiceDir, PublicKeyFile),
		filepath.Join(data, ServiceDir, ClientsDir), filepath.Join(data, ServiceDir, ClientsDir, "alice.auth"),
	} {
		fi, err := os.Lstat(p)
		if err != nil {
			t.Fatal(err)
		}
		st := fi.Sys().(*syscall.Stat_t)
		if st.Uid != uid || st.Gid != gid || fi.Mode().Perm()&0o077 != 0 {
			t.Errorf("%s: owner %d:%d mode %v, want %d:%d and private", p, st.Uid, st.Gid, fi.Mode(), uid, gid)
		}
	}
	// A symbolic link where authorized_clients should be is refused, not
	// followed (root must not hand anything outside the data directory over).
	other := filepath.Join(t.TempDir(), "data")
	os.MkdirAll(filepath.Join(other, ServiceDir), 0o700)
	os.Chown(other, uid, gid)
	outside := t.TempDir()
	os.Chmod(outside, 0o700)
	os.Symlink(outside, filepath.Join(other, ServiceDir, ClientsDir))
	if _, err := AddClient(other, "bob"); err == nil || !strings.Contains(err.Error(), "not a directory") {
		t.Fatalf("a linked authorized_clients: %v", err)
	}
	if entries, _ := os.ReadDir(outside); len(entries) != 0 {
		t.Fatalf("AddClient wrote through the link: %v", entries)
	}
}

// TestClientsStampSeesKeysNotTimes: the running service compares stamps
// to notice a change of keys. tor creates and checks authorized_clients
// as it starts, which must not count as a change (it made onionchat stop
// for nothing); a key added, or the directory opened to others, must.
func TestClientsStampSeesKeysNotTimes(t *testing.T) {
	dir := filepath.Join(t.TempDir(), ClientsDir)
	none := clientsStamp(dir)
	if err := os.Mkdir(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	if got := clientsStamp(dir); got != none {
		t.Fatalf("an empty directory made: stamp %q, was %q", got, none)
	}
	later := time.Now().Add(time.Minute)
	if err := os.Chtimes(dir, later, later); err != nil {
		t.Fatal(err)
	}
	if got := clientsStamp(dir); got != none {
		t.Fatalf("the directory's times changed: stamp %q, was %q", got, none)
	}
	if err := os.WriteFile(filepath.Join(dir, "alice.auth"), []byte("descriptor:x25519:"+strings.Repeat("A", 52)+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	withKey := clientsStamp(dir)
	if withKey == none {
		t.Fatal("a key added: the stamp did not change")
	}
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if clientsStamp(dir) == withKey {
		t.Fatal("the directory opened to others: the stamp did not change")
	}
}

// revoked tells a key taken away (removed, or replaced under its name)
// from keys only added, which a reload may apply.
func TestRevoked(t *testing.T) {
	was := map[string]string{"alice.auth": "descriptor:x25519:A", "bob.auth": "descriptor:x25519:B"}
	for name, c := range map[string]struct {
		now  map[string]string
		want string
	}{
		"same":     {map[string]string{"alice.auth": "descriptor:x25519:A", "bob.auth": "descriptor:x25519:B"}, ""},
		"added":    {map[string]string{"alice.auth": "descriptor:x25519:A", "bob.auth": "descriptor:x25519:B", "carol.auth": "descriptor:x25519:C"}, ""},
		"removed":  {map[string]string{"alice.auth": "descriptor:x25519:A"}, "bob.auth"},
		"replaced": {map[string]string{"alice.auth": "descriptor:x25519:A", "bob.auth": "descriptor:x25519:Z"}, "bob.auth"},
		"all gone": {map[string]string{}, "?"},
	} {
		got := revoked(was, c.now)
		if c.want == "?" && got == "" || c.want != "?" && got != c.want {
			t.Errorf("%s: revoked = %q, want %q", name, got, c.want)
		}
	}
}
