package config

import (
	"path/filepath"
	"strings"
	"time"
)

// Cluster links this instance to others that serve the same rooms
// behind one onion address (an Onionbalance front; docs/protocol.md §15).
// It is off while Listen and URL are empty: a single box, as without the
// section. internal/cluster owns what the addresses may be (links that
// leave the machine need TLS) and says so with the key's line.
type Cluster struct {
	Listen string   `toml:"listen"` // this instance's NATS route address, host:port
	Peers  []string `toml:"peers"`  // the other instances' route addresses
	URL    string   `toml:"url"`    // an external NATS server instead of the embedded one

	TLSCert      string `toml:"tls_cert"`      // this instance's certificate (PEM)
	TLSKey       string `toml:"tls_key"`       // its key
	TLSCA        string `toml:"tls_ca"`        // the authority that signed every instance's certificate
	User         string `toml:"user"`          // with password_file: the links' credentials, required
	PasswordFile string `toml:"password_file"` // a file holding the password (one line), readable by its owner only

	// Front is the Onionbalance front's address, "….onion": onion mode
	// serves behind it (HiddenServiceOnionbalanceInstance and ob_config)
	// and pages derive their keys from it, the same on every instance.
	Front string `toml:"front"`
	// DeadAfter is how long another instance may stay silent before its
	// sessions leave and its names are free.
	DeadAfter Duration `toml:"dead_after"`
}

// On reports whether the section links this instance to others.
func (c *Cluster) On() bool { return c.Listen != "" || c.URL != "" }

func (c *Cluster) validate(mode string) error {
	if !c.On() {
		switch {
		case c.Front != "":
			return bad("cluster.front", "needs cluster.listen (this instance's link address) or cluster.url")
		case len(c.Peers) > 0:
			return bad("cluster.peers", "needs cluster.listen (this instance's link address)")
		}
		return nil
	}
	for _, f := range []struct{ key, path string }{
		{"cluster.tls_cert", c.TLSCert}, {"cluster.tls_key", c.TLSKey},
		{"cluster.tls_ca", c.TLSCA}, {"cluster.password_file", c.PasswordFile},
	} {
		if f.path != "" && !filepath.IsAbs(f.path) {
			return bad(f.key, "want an absolute path, not %q", f.path)
		}
	}
	if c.Front != "" {
		if mode != ModeOnion {
			return bad("cluster.front", "an Onionbalance front is for onion mode, not %q", mode)
		}
		if !strings.HasSuffix(c.Front, ".onion") || len(c.Front) != 62 {
			return bad("cluster.front", "want the front's v3 address (56 characters and .onion), not %q", c.Front)
		}
	}
	if d := c.DeadAfter.Duration; d < 2*time.Second || d > 10*time.Minute {
		return bad("cluster.dead_after", "want 2s to 10m, not %v", d)
	}
	if c.User == "" {
		return bad("cluster.user", "a cluster always needs credentials: set user and password_file")
	}
	if c.PasswordFile == "" {
		return bad("cluster.password_file", "a cluster always needs credentials: set password_file (a file only the service can read)")
	}
	return nil
}
