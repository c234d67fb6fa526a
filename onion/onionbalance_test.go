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
	for _, c := range []Conf{
		{OnionbalanceFront: front, Ephemeral: true},
		{OnionbalanceFront: strings.ToUpper(front)},
		{OnionbalanceFront: "abc.onion"},
		{OnionbalanceFront: front + "\nSocksPort 9050"},
	} {
		if err := checkFront(c); err == nil {
			t.Errorf("%+v: accepted", c)
		}
	}
	rc := torrc{dataDir: "/d/tor", cookieFile: "/r/c", serviceDir: "/d/onion", socket: "/r/hub.sock", conf: Conf{OnionbalanceFront: front}}
	text, err := rc.render()
	if err != nil || !strings.Contains(text, "\nHiddenServiceOnionbalanceInstance 1\n") {
		t.Fatalf("torrc: %v\n%s", err, text)
	}
}
