package onion

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/onionchat/onionchat/internal/securefile"
)

// OBConfigFile is the file in the service directory that names the
// Onionbalance front to tor (HiddenServiceOnionbalanceInstance).
const OBConfigFile = "ob_config"

// checkFront checks Conf.OnionbalanceFront: a v3 onion address, written
// as this package writes addresses, with a kept service key.
func checkFront(c Conf) error {
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
