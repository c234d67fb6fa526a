// Package app runs the appliance: it builds the hub and the web handler
// from a configuration, opens the listeners each mode needs (a TLS listener
// in LAN mode, tor's unix socket in onion mode), tells the owner where the
// service is, and shuts everything down in order when its context ends.
//
// It owns the lifecycle and nothing else: limits live in hub, HTTP in web,
// Tor in onion, the file format in internal/config.
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
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"runtime/metrics"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/onionchat/onionchat/hub"
	"github.com/onionchat/onionchat/internal/config"
	"github.com/onionchat/onionchat/internal/qrterm"
	"github.com/onionchat/onionchat/internal/securefile"
	"github.com/onionchat/onionchat/internal/tlscert"
	"github.com/onionchat/onionchat/onion"
	"github.com/onionchat/onionchat/web"
)

// shutdownTimeout bounds the HTTP server's graceful shutdown.
const shutdownTimeout = 5 * time.Second

// Run serves cfg until ctx ends, then closes every client with 1001 and
// returns nil. Out receives what the owner needs to see (addresses,
// fingerprints); log receives start, stop and errors.
func Run(ctx context.Context, cfg config.Config, out io.Writer, log *slog.Logger) error {
	// A relay's memory is mostly idle connections, and on a 512 MB Pi
	// memory is scarcer than CPU: collect at 50% heap growth rather than
	// Go's 100%, unless the owner set GOGC. (bench: ~11 instead of ~13 KiB
	// per idle connection.)
	if os.Getenv("GOGC") == "" {
		debug.SetGCPercent(50)
	}
	dataDir := cfg.DataDir
	if dataDir == "" {
		d, err := config.DefaultDataDir()
		if err != nil {
			return err
		}
		dataDir = d
	}

	var lanLn net.Listener
	var lanTLS *tls.Config
	var serverID string
	var hosts []string // the Host header values every listener answers to
	if cfg.Mode == config.ModeLAN || cfg.Mode == config.ModeBoth {
		cert, err := loadCert(cfg, dataDir)
		if err != nil {
			return err
		}
		serverID = cert.ID()
		ln, err := net.Listen("tcp", cfg.LAN.Listen)
		if err != nil {
			return fmt.Errorf("lan: listen on %s: %w (is another program using the port? set lan.listen or --listen)", cfg.LAN.Listen, err)
		}
		lanLn, lanTLS = ln, tlscert.Config(cert)
		defer lanLn.Close()
		hosts = append(hosts, hostNames(cert.Names, ln.Addr().(*net.TCPAddr).Port, 443)...)
		if cert.Created {
			fmt.Fprintf(out, "Created a self-signed certificate in %s\n", dataDir)
		}
		for _, u := range urls(ln.Addr().(*net.TCPAddr)) {
			fmt.Fprintf(out, "Serving %s\n", u)
		}
		fmt.Fprintf(out, "Certificate SHA-256 fingerprint: %s\n", cert.Fingerprint)
		fmt.Fprintf(out, "Friends should see this fingerprint in their browser's certificate details before they accept it.\n")
	}
	var localLn net.Listener
	if cfg.Mode == config.ModeLocal {
		ln, u, err := listenLocal(cfg.Local.Listen)
		if err != nil {
			return err
		}
		defer ln.Close()
		localLn = ln
		if serverID, err = localServerID(dataDir); err != nil {
			return err
		}
		if a, ok := ln.Addr().(*net.TCPAddr); ok {
			hosts = append(hosts, hostNames([]string{"127.0.0.1", "localhost", "::1"}, a.Port, 80)...)
		}
		hosts = append(hosts, cfg.Local.Hosts...)
		fmt.Fprintf(out, "Serving %s\n", u)
		fmt.Fprintln(out, "Plain HTTP on this machine only: open it here, or put your own tor or reverse proxy in front.")
	}

	var svc *onion.Service
	torDone := make(<-chan struct{}) // never closed without tor
	if cfg.Mode == config.ModeOnion || cfg.Mode == config.ModeBoth {
		var err error
		svc, err = startOnion(ctx, cfg, dataDir, out, log)
		if err != nil {
			return err
		}
		defer svc.Close()
		serverID = svc.Addr // in both mode too: one id for one hub
		torDone = svc.Done()
		hosts = append(hosts, hostNames([]string{svc.Addr}, 80, 80)...)
	}

	hubCfg := cfg.HubConfig()
	hubCfg.ServerID = serverID
	hubCfg.Wire = web.Wire{}
	hubCfg.Logger = log
	h := hub.New(hubCfg)
	handler := web.New(web.Config{Hub: h, Hosts: hosts, HandshakeTimeout: cfg.Hub.HandshakeTimeout.Duration, Logger: log})
	if lanLn != nil {
		lanLn = tls.NewListener(handler.Listener(lanLn), lanTLS)
	}
	if localLn != nil {
		localLn = handler.Listener(localLn)
	}
	var onionLn net.Listener
	if svc != nil {
		onionLn = handler.Listener(svc.Listener)
	}

	hubCtx, stopHub := context.WithCancel(context.Background())
	hubDone := make(chan struct{})
	go func() { h.Run(hubCtx); close(hubDone) }()
	serveErr := make(chan error, 2)
	var servers []*http.Server
	for _, ln := range []net.Listener{lanLn, localLn, onionLn} {
		if ln == nil {
			continue
		}
		srv := handler.Server()
		servers = append(servers, srv)
		go func() { serveErr <- srv.Serve(ln) }()
	}
	// SIGUSR1 is answered before the start is announced: its default
	// action would end the process.
	stopHousekeeping := housekeeping(h, handler, log)
	defer stopHousekeeping()
	log.Info("onionchat started", "mode", cfg.Mode)

	var err error
	select {
	case <-ctx.Done():
	case err = <-serveErr:
		err = fmt.Errorf("serve: %w", err)
	case <-torDone:
		err = fmt.Errorf("%w; exiting so that the service manager restarts onionchat", svc.Err())
	}
	sctx, cancel := context.WithTimeout(context.Background(), shutdownTimeout)
	defer cancel()
	for _, srv := range servers {
		srv.Shutdown(sctx) // stops accepting; WebSockets are the hub's to close
	}
	stopHub()
	<-hubDone
	if svc != nil {
		svc.Close()
	}
	if err != nil {
		log.Error("onionchat stopped", "err", err)
	} else {
		log.Info("onionchat stopped")
	}
	if errors.Is(err, http.ErrServerClosed) {
		err = nil
	}
	return err
}

// listenLocal opens local mode's listener (config has checked that it is
// loopback or a unix socket) and returns it with the URL to print.
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

// memSamples are the runtime metrics the SIGUSR1 line reports.
var memSamples = []metrics.Sample{
	{Name: "/memory/classes/heap/objects:bytes"},
	{Name: "/memory/classes/heap/stacks:bytes"},
}

// housekeeping answers SIGUSR1 with a line of counts (never a name, a room
// or an address), and gives memory back to the OS when many sessions have
// ended or the last one has, so that a small machine recovers from a busy
// hour.
func housekeeping(h *hub.Hub, handler *web.Handler, log *slog.Logger) (stop func()) {
	usr1 := make(chan os.Signal, 1)
	signal.Notify(usr1, syscall.SIGUSR1)
	done := make(chan struct{})
	go func() {
		t := time.NewTicker(2 * time.Second)
		defer t.Stop()
		peak := 0
		for {
			select {
			case <-done:
				return
			case <-usr1:
				st := h.Stats()
				metrics.Read(memSamples) // unlike ReadMemStats, does not stop the world
				log.Info("stats", "sessions", st.Sessions, "pending", handler.Pending(), "away", st.Away, "rooms", st.Rooms, "peers", st.Peers,
					"kept", st.History, "kept_kib", st.KeptBytes>>10, "slow_dropped", st.SlowDropped, "rate_dropped", st.RateDropped,
					"goroutines", runtime.NumGoroutine(), "heap_kib", memSamples[0].Value.Uint64()>>10,
					"stack_kib", memSamples[1].Value.Uint64()>>10)
			case <-t.C:
				n := h.Sessions()
				peak = max(peak, n)
				if peak >= 64 && n <= peak/2 || n == 0 && peak > 0 {
					// Two collections: the first moves pooled buffers to
					// the pools' victim caches, the second frees them.
					runtime.GC()
					debug.FreeOSMemory()
					peak = n
				}
			}
		}
	}()
	return func() { signal.Stop(usr1); close(done) }
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

// startOnion starts tor and prints the address once it is published.
func startOnion(ctx context.Context, cfg config.Config, dataDir string, out io.Writer, log *slog.Logger) (*onion.Service, error) {
	t := cfg.Tor
	sandbox, _ := onion.ParseFeature(t.Sandbox)
	pow, _ := onion.ParseFeature(t.PoWDefense)
	runtimeDir := t.RuntimeDir
	if runtimeDir == "" {
		runtimeDir = os.Getenv("RUNTIME_DIRECTORY")
		if err := onion.CheckTorrcValue(runtimeDir); runtimeDir != "" && err != nil {
			return nil, fmt.Errorf("$RUNTIME_DIRECTORY: the path %q %w; it would be written into tor's configuration", runtimeDir, err)
		}
	}
	fmt.Fprintln(out, "Starting tor…")
	svc, err := onion.Start(ctx, onion.Conf{
		TorPath:           t.Path,
		DataDir:           dataDir,
		RuntimeDir:        runtimeDir,
		Ephemeral:         t.Ephemeral,
		Sandbox:           sandbox,
		PoW:               pow,
		NoSafeLogging:     !t.SafeLogging,
		NoAvoidDiskWrites: !t.AvoidDiskWrites,
		NoIntroDoSDefense: !t.IntroDoSDefense,
		MaxStreams:        t.MaxStreams,
		MaxMemInQueues:    t.MaxMemInQueues,
		PublishTimeout:    t.PublishTimeout.Duration,
		ExtraTorrc:        t.ExtraTorrc,
		Progress:          func(msg string) { fmt.Fprintln(out, msg) },
		Logger:            log,
	})
	if err != nil {
		return nil, err
	}
	fmt.Fprintf(out, "Tor sandbox: %s; proof-of-work defence: %s\n", onOff(svc.Sandbox, svc.Support.Sandbox), onOff(svc.PoW, svc.Support.PoW))
	switch {
	case t.Ephemeral:
		fmt.Fprintln(out, "Ephemeral address: it changes at every start; tor read its key through a pipe, so it never touched the disk")
	case len(svc.Clients) > 0:
		// A checked fact: tor loaded every key and its descriptor requires one.
		fmt.Fprintf(out, "Client authorization: on (%d keys); only their holders can reach the service\n", len(svc.Clients))
	default:
		fmt.Fprintln(out, "Client authorization: off; anyone who has the address can reach the service (onionchat auth add NAME)")
	}
	fmt.Fprintf(out, "Onion service published in %v:\n", svc.Published.Round(100*time.Millisecond))
	u := "http://" + svc.Addr + "/"
	if qr, err := qrterm.Render(u); err == nil {
		fmt.Fprint(out, qr)
	}
	fmt.Fprintf(out, "Serving %s\n", u)
	fmt.Fprintln(out, "Open it in Tor Browser.")
	return svc, nil
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

func loadCert(cfg config.Config, dataDir string) (*tlscert.Cert, error) {
	if cfg.LAN.CertFile != "" {
		return tlscert.Load(cfg.LAN.CertFile, cfg.LAN.KeyFile)
	}
	return tlscert.LoadOrCreate(dataDir, cfg.LAN.Names)
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
