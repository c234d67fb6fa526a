package onion

import (
	"crypto/ed25519"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// An Onionbalance backend: ob_config names the front, 0600, rewritten
// when the front changes and removed without one; refused with client
// keys (the front would admit anyone), with an ephemeral address, and
// for anything that is not a v3 address.
func TestOnionbalanceBackend(t *testing.T) {
	front := Address(ed25519.PublicKey(make([]byte, 32)))
	dir := t.TempDir()
	p := filepath.Join(dir, OBConfigFile)
	for _, f := range []string{front, Address(ed25519.PublicKey(append(make([]byte, 31), 1)))} {
		if err := writeOBConfig(dir, f, 0); err != nil {
			t.Fatal(err)
		}
		b, err := os.ReadFile(p)
		fi, _ := os.Stat(p)
		if err != nil || string(b) != "MasterOnionAddress "+f+"\n" || fi.Mode().Perm() != 0o600 {
			t.Fatalf("ob_config %q (%v), mode %v", b, err, fi.Mode())
		}
	}
	if err := writeOBConfig(dir, "", 0); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(p); !os.IsNotExist(err) {
		t.Fatalf("ob_config kept without a front: %v", err)
	}
	if err := writeOBConfig(dir, front, 2); err == nil || !strings.Contains(err.Error(), "client-authorization") {
		t.Fatalf("client keys and a front: %v", err)
	}
	if _, err := os.Stat(p); !os.IsNotExist(err) {
		t.Fatal("ob_config written beside client keys")
	}
	for _, c := range []Config{
		{OnionbalanceFront: front, Ephemeral: true},
		{OnionbalanceFront: strings.ToUpper(front)},
		{OnionbalanceFront: "abc.onion"},
		{OnionbalanceFront: front + "\nSocksPort 9050"},
	} {
		if err := checkFront(c); err == nil {
			t.Errorf("%+v: accepted", c)
		}
	}
	rc := torrc{dataDir: "/d/tor", control: "/r/control.sock", cookieFile: "/r/c", serviceDir: "/d/onion", socket: "/r/hub.sock", conf: Config{OnionbalanceFront: front}}
	text, err := rc.render()
	if err != nil || !strings.Contains(text, "\nHiddenServiceOnionbalanceInstance 1\n") {
		t.Fatalf("torrc: %v\n%s", err, text)
	}
}

// FrontConfig names the front's key and every backend, and refuses what
// Onionbalance would misread or what cannot work.
func TestFrontConfig(t *testing.T) {
	data := filepath.Join(t.TempDir(), "data")
	dir, front, err := EnsureKey(data)
	if err != nil {
		t.Fatal(err)
	}
	key := filepath.Join(dir, SecretKeyFile)
	b1 := Address(ed25519.PublicKey(make([]byte, 32)))
	b2 := Address(ed25519.PublicKey(append(make([]byte, 31), 1)))
	cfg, got, err := FrontConfig(key, []string{b1, b2})
	if err != nil || got != front {
		t.Fatalf("%s %v", got, err)
	}
	want := "- key: " + key + "\n  instances:\n  - address: " + strings.TrimSuffix(b1, ".onion") + "\n    name: backend1\n  - address: " +
		strings.TrimSuffix(b2, ".onion") + "\n    name: backend2\n"
	if !strings.HasSuffix(string(cfg), want) {
		t.Fatalf("config:\n%s", cfg)
	}
	for name, c := range map[string]struct {
		key      string
		backends []string
	}{
		"relative key":     {"front.key", []string{b1}},
		"yaml in the path": {filepath.Join(data, "a: b"), []string{b1}},
		"no key":           {filepath.Join(data, "none"), []string{b1}},
		"no backend":       {key, nil},
		"bad backend":      {key, []string{"abc.onion"}},
		"front as backend": {key, []string{front}},
	} {
		if _, _, err := FrontConfig(c.key, c.backends); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}
