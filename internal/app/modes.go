package app

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/onionchat/onionchat/internal/config"
	"github.com/onionchat/onionchat/internal/qrterm"
	"github.com/onionchat/onionchat/internal/securefile"
	"github.com/onionchat/onionchat/internal/tlscert"
	"github.com/onionchat/onionchat/onion"
)

// A mode is one way of reaching the hub, as it starts: a listener for
// the web handler, and what goes with it.
type mode struct {
	ln       net.Listener
	tls      *tls.Config // nil: plain HTTP
	serverID string      // what pages mix into their room keys
	hosts    []string    // the Host header values it answers to
	banner   string      // what the owner is told once it is up
	close    func()      // stops it; closes ln
	// done is closed when the mode stops serving by itself (tor exited),
	// and err then says why; nil: never.
	done <-chan struct{}
	err  func() error
}

// startModes starts the modes cfg.Mode names, in order, and prints each
// one's banner as it comes up. "both" is LAN and onion with one hub: the
// later mode's server id, the onion address, is the hub's. On an error
// the modes started are closed.
func startModes(ctx context.Context, cfg config.Config, s settings, out io.Writer, log *slog.Logger) ([]mode, error) {
	lan := func() (mode, error) { return lanMode(cfg.LAN, s.dataDir) }
	local := func() (mode, error) { return localMode(cfg.Local, s.dataDir) }
	tor := func() (mode, error) { return onionMode(ctx, s.onion, out, log) }
	starts := map[string][]func() (mode, error){
		config.ModeLAN:   {lan},
		config.ModeLocal: {local},
		config.ModeOnion: {tor},
		config.ModeBoth:  {lan, tor},
	}[cfg.Mode]
	var modes []mode
	for _, start := range starts {
		m, err := start()
		if err != nil {
			closeModes(modes)
			return nil, err
		}
		fmt.Fprint(out, m.banner)
		modes = append(modes, m)
	}
	return modes, nil
}

func closeModes(modes []mode) {
	for _, m := range modes {
		m.close()
	}
}

// lanMode serves HTTPS with LAN mode's certificate, whose fingerprint is
// the server id.
func lanMode(c config.LAN, dataDir string) (mode, error) {
	cert, err := loadCert(c, dataDir)
	if err != nil {
		return mode{}, err
	}
	ln, err := net.Listen("tcp", c.Listen)
	if err != nil {
		return mode{}, fmt.Errorf("lan: listen on %s: %w (is another program using the port? set lan.listen or --listen)", c.Listen, err)
	}
	addr := ln.Addr().(*net.TCPAddr)
	var b strings.Builder
	if cert.Created {
		fmt.Fprintf(&b, "Created a self-signed certificate in %s\n", dataDir)
	}
	for _, u := range urls(addr) {
		fmt.Fprintf(&b, "Serving %s\n", u)
	}
	fmt.Fprintf(&b, "Certificate SHA-256 fingerprint: %s\n", cert.Fingerprint)
	fmt.Fprintf(&b, "Friends should see this fingerprint in their browser's certificate details before they accept it.\n")
	return mode{ln: ln, tls: tlscert.Config(cert), serverID: cert.ID(), hosts: hostNames(cert.Names, addr.Port, 443),
		banner: b.String(), close: func() { ln.Close() }}, nil
}

func loadCert(c config.LAN, dataDir string) (*tlscert.Cert, error) {
	if c.CertFile != "" {
		return tlscert.Load(c.CertFile, c.KeyFile)
	}
	return tlscert.LoadOrCreate(dataDir, c.Names)
}

// urls lists the addresses friends can open: the listen address, or every
// interface address when listening on all of them.
func urls(a *net.TCPAddr) []string {
	port := strconv.Itoa(a.Port)
	if !a.IP.IsUnspecified() {
		return []string{"https://" + net.JoinHostPort(a.IP.String(), port) + "/"}
	}
	var out []string
	addrs, _ := net.InterfaceAddrs()
	for _, ad := range addrs {
		if ipn, ok := ad.(*net.IPNet); ok && !ipn.IP.IsLinkLocalUnicast() {
			out = append(out, "https://"+net.JoinHostPort(ipn.IP.String(), port)+"/")
		}
	}
	return out
}

// localMode serves plain HTTP on loopback or a unix socket (config has
// checked which), with a random server id kept in the data directory.
func localMode(c config.Local, dataDir string) (mode, error) {
	ln, u, err := listenLocal(c.Listen)
	if err != nil {
		return mode{}, err
	}
	id, err := localServerID(dataDir)
	if err != nil {
		ln.Close()
		return mode{}, err
	}
	var hosts []string
	if a, ok := ln.Addr().(*net.TCPAddr); ok {
		hosts = hostNames([]string{"127.0.0.1", "localhost", "::1"}, a.Port, 80)
	}
	banner := "Serving " + u + "\n" +
		"Plain HTTP on this machine only: open it here, or put your own tor or reverse proxy in front.\n"
	return mode{ln: ln, serverID: id, hosts: append(hosts, c.Hosts...), banner: banner, close: func() { ln.Close() }}, nil
}

// listenLocal opens local mode's listener and returns it with the URL to
// print.
func listenLocal(addr string) (net.Listener, string, error) {
	if p, ok := strings.CutPrefix(addr, "unix:"); ok {
		os.Remove(p)
		ln, err := net.Listen("unix", p)
		if err != nil {
			return nil, "", fmt.Errorf("local: listen on %s: %w", addr, err)
		}
		os.Chmod(p, 0o660)
		return ln, addr, nil
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, "", fmt.Errorf("local: listen on %s: %w (is another program using the port? set local.listen or --listen)", addr, err)
	}
	return ln, "http://" + ln.Addr().String() + "/", nil
}

// LocalIDFile is the file in the data directory that holds local mode's
// server id.
const LocalIDFile = "local-id"

// localServerID returns local mode's server id, "local:" and 16 random
// bytes made once per install and kept in the data directory, so that no
// two installs derive the same room keys from the same passphrase.
func localServerID(dataDir string) (string, error) {
	if err := securefile.EnsureDir(dataDir); err != nil {
		return "", fmt.Errorf("local: data directory: %w", err)
	}
	p := filepath.Join(dataDir, LocalIDFile)
	b, err := securefile.Read(p)
	if errors.Is(err, fs.ErrNotExist) {
		var r [16]byte
		rand.Read(r[:])
		err = securefile.WriteNew(p, []byte(base64.RawURLEncoding.EncodeToString(r[:])+"\n"))
		if err != nil && !errors.Is(err, fs.ErrExist) { // ErrExist: another start made it first
			return "", fmt.Errorf("local: server id: %w", err)
		}
		b, err = securefile.Read(p)
	}
	if err != nil {
		return "", fmt.Errorf("local: server id: %w", err)
	}
	id := strings.TrimSuffix(string(b), "\n")
	if raw, err := base64.RawURLEncoding.DecodeString(id); err != nil || len(raw) != 16 {
		return "", fmt.Errorf("local: %s does not hold a server id (22 characters of base64url); remove it and onionchat makes a new one (rooms then get new ids, so pages must rejoin)", p)
	}
	return "local:" + id, nil
}

// onionMode starts tor, printing its progress, and serves the onion
// service once it is published; the onion address is the server id.
func onionMode(ctx context.Context, conf onion.Config, out io.Writer, log *slog.Logger) (mode, error) {
	conf.Progress = func(msg string) { fmt.Fprintln(out, msg) }
	conf.Logger = log
	fmt.Fprintln(out, "Starting tor…")
	svc, err := onion.Start(ctx, conf)
	if err != nil {
		return mode{}, err
	}
	var b strings.Builder
	fmt.Fprintf(&b, "Tor sandbox: %s; proof-of-work defence: %s\n", onOff(svc.Sandbox, svc.Support.Sandbox), onOff(svc.PoW, svc.Support.PoW))
	switch {
	case conf.Ephemeral:
		fmt.Fprintln(&b, "Ephemeral address: it changes at every start; tor read its key through a pipe, so it never touched the disk")
	case len(svc.Clients) > 0:
		// A checked fact: tor loaded every key and its descriptor requires one.
		fmt.Fprintf(&b, "Client authorization: on (%d keys); only their holders can reach the service\n", len(svc.Clients))
	default:
		fmt.Fprintln(&b, "Client authorization: off; anyone who has the address can reach the service (onionchat auth add NAME)")
	}
	fmt.Fprintf(&b, "Onion service published in %v:\n", svc.Published.Round(100*time.Millisecond))
	serverID, hosts := svc.Addr, hostNames([]string{svc.Addr}, 80, 80)
	if front := conf.OnionbalanceFront; front != "" {
		// Every backend answers to the front's address and is called by
		// it: pages derive their room keys from the server id.
		fmt.Fprintf(&b, "This backend's own address (for the front's onionchat cluster --backend): %s\n", svc.Addr)
		fmt.Fprintln(&b, "Behind the Onionbalance front, which friends open once onionbalance publishes it:")
		serverID, hosts = front, append(hosts, hostNames([]string{front}, 80, 80)...)
	}
	u := "http://" + serverID + "/"
	if qr, err := qrterm.Render(u); err == nil {
		fmt.Fprint(&b, qr)
	}
	fmt.Fprintf(&b, "Serving %s\n", u)
	fmt.Fprintln(&b, "Open it in Tor Browser.")
	stopped := func() error {
		return fmt.Errorf("%w; exiting so that the service manager restarts onionchat", svc.Err())
	}
	return mode{ln: svc.Listener, serverID: serverID, hosts: hosts, banner: b.String(),
		close: func() { svc.Close() }, done: svc.Done(), err: stopped}, nil
}

func onOff(on, supported bool) string {
	switch {
	case on:
		return "on"
	case supported:
		return "off (by configuration)"
	}
	return "off (this tor does not support it)"
}

// hostNames returns the Host header values for names on port: each name
// with the port, and alone too when port is the scheme's default.
func hostNames(names []string, port, defaultPort int) []string {
	var out []string
	p := strconv.Itoa(port)
	for _, n := range names {
		hp := net.JoinHostPort(n, p)
		out = append(out, hp)
		if port == defaultPort {
			out = append(out, strings.TrimSuffix(hp, ":"+p))
		}
	}
	return out
}
