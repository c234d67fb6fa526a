package cluster

import (
	"net"
	"net/netip"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/onionchat/onionchat/internal/setting"
)

// Defaults of Config's zero values.
const (
	// DefaultHeartbeat is how often an instance says it is alive.
	DefaultHeartbeat = time.Second
	// DefaultDeadAfter is how long an instance may stay silent before the
	// others forget it and its sessions: its names are free again within
	// DeadAfter + Heartbeat of its death.
	DefaultDeadAfter = 5 * time.Second
	// DefaultName is the cluster's name on the NATS routes.
	DefaultName = "onionchat"
)

// Config configures a Node. Every zero value is documented.
//
// The fields with a toml tag are the [cluster] section of the
// configuration file: the tag is the key there, Validate what an owner
// may set, WithDefaults the defaults config.example.toml documents.
type Config struct {
	// Listen is this instance's NATS route address (host:port) that the
	// other instances dial; empty with URL set.
	Listen string `toml:"listen"`
	// Peers are the other instances' route addresses (host:port).
	Peers []string `toml:"peers"`
	// URL is an external NATS server (nats:// or tls://) to connect to
	// instead of embedding one; Listen and Peers must then be empty.
	URL string `toml:"url"`

	// CertFile and KeyFile are this instance's TLS certificate and key,
	// CAFile the certificate authority that signed every instance's: the
	// links between instances are mutual TLS. Required unless every
	// address is loopback.
	CertFile string `toml:"tls_cert"`
	KeyFile  string `toml:"tls_key"`
	CAFile   string `toml:"tls_ca"`
	// User and Password authenticate the links; both are required.
	// PasswordFile holds the password (one line, readable by its owner
	// only) when Password is empty: ReadPassword reads it, Start too.
	User         string `toml:"user"`
	PasswordFile string `toml:"password_file"`
	Password     string `toml:"-"`

	// Front is the Onionbalance front's address, "….onion", that the
	// instances serve behind; "" means none. The links do not use it:
	// internal/app hands it to onion (onion.Config.OnionbalanceFront)
	// and makes it the server id pages derive their keys from, the same
	// on every instance.
	Front string `toml:"front"`

	DeadAfter time.Duration `toml:"dead_after"` // 0: DefaultDeadAfter
	Name      string        `toml:"-"`          // cluster name; "": DefaultName
	Heartbeat time.Duration `toml:"-"`          // 0: DefaultHeartbeat
	// ClaimTimeout bounds how long a join waits for the other instances'
	// answers; 0 means DeadAfter + Heartbeat, so that a join asked while
	// an instance has just died waits until it is forgotten rather than
	// failing (live instances answer in milliseconds).
	ClaimTimeout time.Duration `toml:"-"`
}

// On reports whether c links this instance to others: off while Listen
// and URL are empty, a single box.
func (c Config) On() bool { return c.Listen != "" || c.URL != "" }

// WithDefaults returns c with every zero setting at its default, but
// ClaimTimeout, which follows DeadAfter and Heartbeat when Start runs.
func (c Config) WithDefaults() Config {
	if c.Name == "" {
		c.Name = DefaultName
	}
	if c.Heartbeat <= 0 {
		c.Heartbeat = DefaultHeartbeat
	}
	if c.DeadAfter <= 0 {
		c.DeadAfter = DefaultDeadAfter
	}
	return c
}

// TLS reports whether the config carries TLS files.
func (c Config) TLS() bool { return c.CertFile != "" || c.KeyFile != "" || c.CAFile != "" }

// Validate reports the first setting of the [cluster] section that an
// owner may not give, as a *setting.Error naming its key: what Start
// refuses (see check), and besides relative paths and a dead_after
// outside 2s to 10m. Off (see On), only a front or peers without a
// listen address are refused.
func (c Config) Validate() error {
	if !c.On() {
		switch {
		case c.Front != "":
			return setting.Errorf("front", "needs listen (this instance's link address) or url")
		case len(c.Peers) > 0:
			return setting.Errorf("peers", "needs listen (this instance's link address)")
		}
		return nil
	}
	for _, f := range []struct{ key, path string }{
		{"tls_cert", c.CertFile}, {"tls_key", c.KeyFile},
		{"tls_ca", c.CAFile}, {"password_file", c.PasswordFile},
	} {
		if f.path != "" && !filepath.IsAbs(f.path) {
			return setting.Errorf(f.key, "want an absolute path, not %q", f.path)
		}
	}
	if c.Front != "" && (!strings.HasSuffix(c.Front, ".onion") || len(c.Front) != 62) {
		return setting.Errorf("front", "want the front's v3 address (56 characters and .onion), not %q", c.Front)
	}
	if err := setting.Range("dead_after", c.DeadAfter, 2*time.Second, 10*time.Minute); err != nil {
		return err
	}
	return c.check()
}

// check refuses a config that would carry room traffic in clear over a
// network, that would let anyone who reaches a route address in (a
// cluster always needs credentials, on loopback too), or that cannot
// work. Links between instances run over a LAN or a VPN and carry every
// room's ciphertext, names and session ids: a listen or peer address
// that is not loopback needs TLS (all three files). Start fails closed
// on it: nothing starts on an error. Its errors are *setting.Error.
func (c Config) check() error {
	if c.URL != "" {
		if c.Listen != "" || len(c.Peers) > 0 {
			return setting.Errorf("url", "an external NATS server (url) and an embedded one (listen, peers) exclude each other")
		}
	} else if c.Listen == "" {
		return setting.Errorf("listen", "no listen address: set this instance's route address, e.g. 127.0.0.1:6222")
	}
	if c.TLS() && (c.CertFile == "" || c.KeyFile == "" || c.CAFile == "") {
		return setting.Errorf("tls_cert", "TLS needs tls_cert, tls_key and tls_ca together")
	}
	if c.Heartbeat > 0 && c.DeadAfter > 0 && c.DeadAfter < 2*c.Heartbeat {
		return setting.Errorf("dead_after", "%v must be at least twice the heartbeat (%v)", c.DeadAfter, c.Heartbeat)
	}
	type addr struct{ key, a string }
	var addrs []addr
	if c.Listen != "" {
		addrs = append(addrs, addr{"listen", c.Listen})
	}
	for _, p := range c.Peers {
		addrs = append(addrs, addr{"peers", p})
	}
	for _, a := range addrs {
		host, port, err := net.SplitHostPort(a.a)
		if err != nil {
			return setting.Errorf(a.key, "%q is not host:port", a.a)
		}
		if p, err := strconv.Atoi(port); err != nil || p < 0 || p > 65535 {
			return setting.Errorf(a.key, "%q: bad port", a.a)
		}
		if !c.TLS() && !loopback(host) {
			return setting.Errorf(a.key, "%s is not a loopback address, and the links between instances carry every room's traffic: set tls_cert, tls_key and tls_ca (mutual TLS), or use 127.0.0.1 on one machine", a.a)
		}
	}
	if c.URL != "" {
		u, err := url.Parse(c.URL)
		if err != nil || u.Host == "" || (u.Scheme != "nats" && u.Scheme != "tls") {
			return setting.Errorf("url", "%q: want nats://host:port or tls://host:port", c.URL)
		}
		if !c.TLS() && !loopback(u.Hostname()) {
			return setting.Errorf("url", "%s: an external NATS server that is not on loopback needs tls_cert, tls_key and tls_ca", c.URL)
		}
	}
	const why = "a cluster always needs credentials, or anyone who reaches a route address joins and reads every room"
	if c.User == "" {
		return setting.Errorf("user", "%s: set user and password_file", why)
	}
	if c.Password == "" && c.PasswordFile == "" {
		return setting.Errorf("password_file", "%s: set password_file (a file only the service can read)", why)
	}
	return nil
}

// ReadPassword sets Password from PasswordFile, which must be one line
// that nobody but its owner can read. Its errors are *setting.Error.
func (c *Config) ReadPassword() error {
	fi, err := os.Stat(c.PasswordFile)
	if err != nil {
		return setting.Errorf("password_file", "%v", err)
	}
	if m := fi.Mode().Perm(); m&0o077 != 0 {
		return setting.Errorf("password_file", "%s can be read by others (mode %04o): chmod 600 it", c.PasswordFile, m)
	}
	b, err := os.ReadFile(c.PasswordFile)
	if err != nil {
		return setting.Errorf("password_file", "%v", err)
	}
	pw := strings.TrimSpace(string(b))
	if pw == "" || strings.ContainsAny(pw, "\r\n") {
		return setting.Errorf("password_file", "want one line of password in %s", c.PasswordFile)
	}
	c.Password = pw
	return nil
}

func loopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip, err := netip.ParseAddr(host)
	return err == nil && ip.IsLoopback()
}
