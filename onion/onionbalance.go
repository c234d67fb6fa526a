package onion

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/onionchat/onionchat/internal/securefile"
)

// OBConfigFile is the file in the service directory that names the
// Onionbalance front to tor (HiddenServiceOnionbalanceInstance).
const OBConfigFile = "ob_config"

// checkFront checks Config.OnionbalanceFront: a v3 onion address, written
// as this package writes addresses, with a kept service key.
func checkFront(c Config) error {
	if c.OnionbalanceFront == "" {
		return nil
	}
	if _, err := addressKey(c.OnionbalanceFront); err != nil {
		return fmt.Errorf("onion: Onionbalance front: %w (want the front's 56 characters and .onion, lower case)", err)
	}
	if c.Ephemeral {
		return errors.New("onion: an Onionbalance backend needs a kept address (the front's config names it): it cannot be ephemeral")
	}
	return nil
}

// writeOBConfig makes dir/ob_config name front (0600, written whole), or
// removes it when there is no front. A backend with client-authorization
// keys is refused: the front would publish the service without them.
func writeOBConfig(dir, front string, clients int) error {
	p := filepath.Join(dir, OBConfigFile)
	if front == "" {
		if err := os.Remove(p); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("onion: remove %s: %w", p, err)
		}
		return nil
	}
	if clients > 0 {
		return fmt.Errorf("onion: %d client-authorization keys and an Onionbalance front: Onionbalance 0.2.2 publishes the front without client authorization, so anyone with its address would get in; remove the keys (onionchat auth remove) or the front", clients)
	}
	want := []byte("MasterOnionAddress " + front + "\n")
	if have, err := securefile.Read(p); err == nil && bytes.Equal(have, want) {
		return nil
	}
	if err := os.Remove(p); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("onion: replace %s: %w", p, err)
	}
	if err := securefile.WriteNew(p, want); err != nil {
		return fmt.Errorf("onion: write %s: %w", p, err)
	}
	return nil
}

// FrontConfig returns the Onionbalance 0.2.2 configuration (YAML) of a
// front that publishes, under the address of the key in keyFile (tor's
// hs_ed25519_secret_key format, which Onionbalance reads as it is), the
// introduction points of the backends, given by their addresses, and the
// front's address. keyFile must be an absolute path to a private, well
// formed key, and every backend a v3 onion address other than the
// front's.
func FrontConfig(keyFile string, backends []string) (config []byte, front string, err error) {
	if !filepath.IsAbs(keyFile) || CheckTorrcValue(keyFile) != nil || strings.ContainsAny(keyFile, ":'{}[]#&*!|>%@`") {
		return nil, "", fmt.Errorf("onion: Onionbalance front key: want an absolute path without quotes, colons, brackets or YAML marks, not %q", keyFile)
	}
	if front, err = KeyFileAddress(keyFile); err != nil {
		return nil, "", err
	}
	if len(backends) == 0 {
		return nil, "", errors.New("onion: an Onionbalance front needs at least one backend address")
	}
	var b strings.Builder
	b.WriteString("# Onionbalance front for onionchat, written by onionchat cluster.\n")
	fmt.Fprintf(&b, "# Front address: %s\nservices:\n", front)
	fmt.Fprintf(&b, "- key: %s\n  instances:\n", keyFile)
	for i, a := range backends {
		if _, err := addressKey(a); err != nil {
			return nil, "", fmt.Errorf("onion: backend %d: %w", i+1, err)
		}
		if a == front {
			return nil, "", fmt.Errorf("onion: backend %d is the front's own address; each backend needs an address of its own", i+1)
		}
		fmt.Fprintf(&b, "  - address: %s\n    name: backend%d\n", strings.TrimSuffix(a, ".onion"), i+1)
	}
	return []byte(b.String()), front, nil
}
