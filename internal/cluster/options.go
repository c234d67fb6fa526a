package cluster

import (
	"fmt"
	"net"
	"net/netip"
	"net/url"
	"strconv"
	"time"
)

// Defaults of Options' zero values.
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

// Options configure a Node. Every zero value is documented.
type Options struct {
	// Listen is this instance's NATS route address (host:port) that the
	// other instances dial; empty with URL set.
	Listen string
	// Peers are the other instances' route addresses (host:port).
	Peers []string
	// URL is an external NATS server (nats:// or tls://) to connect to
	// instead of embedding one; Listen and Peers must then be empty.
	URL string

	// CertFile and KeyFile are this instance's TLS certificate and key,
	// CAFile the certificate authority that signed every instance's: the
	// links between instances are mutual TLS. Required unless every
	// address is loopback.
	CertFile, KeyFile, CAFile string
	// User and Password authenticate the links; both are required.
	User, Password string

	Name      string        // cluster name; "": DefaultName
	Heartbeat time.Duration // 0: DefaultHeartbeat
	DeadAfter time.Duration // 0: DefaultDeadAfter
	// ClaimTimeout bounds how long a join waits for the other instances'
	// answers; 0 means DeadAfter + Heartbeat, so that a join asked while
	// an instance has just died waits until it is forgotten rather than
	// failing (live instances answer in milliseconds).
	ClaimTimeout time.Duration
}

func (o Options) withDefaults() Options {
	if o.Name == "" {
		o.Name = DefaultName
	}
	if o.Heartbeat <= 0 {
		o.Heartbeat = DefaultHeartbeat
	}
	if o.DeadAfter <= 0 {
		o.DeadAfter = DefaultDeadAfter
	}
	if o.ClaimTimeout <= 0 {
		o.ClaimTimeout = o.DeadAfter + o.Heartbeat
	}
	return o
}

// TLS reports whether the options carry TLS files.
func (o Options) TLS() bool { return o.CertFile != "" || o.KeyFile != "" || o.CAFile != "" }

// Check refuses options that would carry room traffic in clear over a
// network, that would let anyone who reaches a route address in (a
// cluster always needs credentials, on loopback too), or that cannot
// work. Links between instances run over a LAN or
// a VPN and carry every room's ciphertext, names and session ids: a
// listen or peer address that is not loopback needs TLS (all three
// files). It fails closed: nothing starts on an error.
//
// Its errors are *OptionError, naming the option as the configuration's
// [cluster] section spells it.
func (o Options) Check() error {
	if o.URL != "" {
		if o.Listen != "" || len(o.Peers) > 0 {
			return optErr("url", "an external NATS server (url) and an embedded one (listen, peers) exclude each other")
		}
	} else if o.Listen == "" {
		return optErr("listen", "no listen address: set this instance's route address, e.g. 127.0.0.1:6222")
	}
	if o.TLS() && (o.CertFile == "" || o.KeyFile == "" || o.CAFile == "") {
		return optErr("tls_cert", "TLS needs tls_cert, tls_key and tls_ca together")
	}
	if o.Heartbeat > 0 && o.DeadAfter > 0 && o.DeadAfter < 2*o.Heartbeat {
		return optErr("dead_after", fmt.Sprintf("%v must be at least twice the heartbeat (%v)", o.DeadAfter, o.Heartbeat))
	}
	type addr struct{ key, a string }
	var addrs []addr
	if o.Listen != "" {
		addrs = append(addrs, addr{"listen", o.Listen})
	}
	for _, p := range o.Peers {
		addrs = append(addrs, addr{"peers", p})
	}
	for _, a := range addrs {
		host, port, err := net.SplitHostPort(a.a)
		if err != nil {
			return optErr(a.key, fmt.Sprintf("%q is not host:port", a.a))
		}
		if p, err := strconv.Atoi(port); err != nil || p < 0 || p > 65535 {
			return optErr(a.key, fmt.Sprintf("%q: bad port", a.a))
		}
		if !o.TLS() && !loopback(host) {
			return optErr(a.key, fmt.Sprintf("%s is not a loopback address, and the links between instances carry every room's traffic: set tls_cert, tls_key and tls_ca (mutual TLS), or use 127.0.0.1 on one machine", a.a))
		}
	}
	if o.URL != "" {
		u, err := url.Parse(o.URL)
		if err != nil || u.Host == "" || (u.Scheme != "nats" && u.Scheme != "tls") {
			return optErr("url", fmt.Sprintf("%q: want nats://host:port or tls://host:port", o.URL))
		}
		if !o.TLS() && !loopback(u.Hostname()) {
			return optErr("url", fmt.Sprintf("%s: an external NATS server that is not on loopback needs tls_cert, tls_key and tls_ca", o.URL))
		}
	}
	if o.User == "" {
		return optErr("user", "a cluster always needs credentials, or anyone who reaches a route address joins and reads every room: set user and password_file")
	}
	if o.Password == "" {
		return optErr("password_file", "a cluster always needs credentials, or anyone who reaches a route address joins and reads every room: set password_file")
	}
	return nil
}

func loopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip, err := netip.ParseAddr(host)
	return err == nil && ip.IsLoopback()
}

// OptionError is an option Check refuses: Key as [cluster] spells it.
type OptionError struct{ Key, Msg string }

func (e *OptionError) Error() string { return e.Key + ": " + e.Msg }

func optErr(key, msg string) error { return &OptionError{Key: key, Msg: msg} }
