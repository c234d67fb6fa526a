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
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"time"

	"github.com/onionchat/onionchat/hub"
	"github.com/onionchat/onionchat/internal/config"
	"github.com/onionchat/onionchat/internal/tlscert"
	"github.com/onionchat/onionchat/web"
)

// shutdownTimeout bounds the HTTP server's graceful shutdown.
const shutdownTimeout = 5 * time.Second

// Run serves cfg until ctx ends, then closes every client with 1001 and
// returns nil. Out receives what the owner needs to see (addresses,
// fingerprints); log receives start, stop and errors.
func Run(ctx context.Context, cfg config.Config, out io.Writer, log *slog.Logger) error {
	dataDir := cfg.DataDir
	if dataDir == "" {
		d, err := config.DefaultDataDir()
		if err != nil {
			return err
		}
		dataDir = d
	}

	var lanLn net.Listener
	var serverID string
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
		lanLn = tls.NewListener(ln, tlscert.Config(cert))
		defer lanLn.Close()
		if cert.Created {
			fmt.Fprintf(out, "Created a self-signed certificate in %s\n", dataDir)
		}
		for _, u := range urls(ln.Addr().(*net.TCPAddr)) {
			fmt.Fprintf(out, "Serving %s\n", u)
		}
		fmt.Fprintf(out, "Certificate SHA-256 fingerprint: %s\n", cert.Fingerprint)
		fmt.Fprintf(out, "Friends should see this fingerprint in their browser's certificate details before they accept it.\n")
	}
	if cfg.Mode == config.ModeOnion || cfg.Mode == config.ModeBoth {
		return errors.New("onion mode is not built yet; use --mode lan")
	}

	hubCfg := cfg.HubConfig()
	hubCfg.ServerID = serverID
	hubCfg.Wire = web.Wire{}
	hubCfg.Logger = log
	h := hub.New(hubCfg)
	srv := web.Server(web.New(web.Config{Hub: h, HandshakeTimeout: cfg.Hub.HandshakeTimeout.Duration, Logger: log}))

	hubCtx, stopHub := context.WithCancel(context.Background())
	hubDone := make(chan struct{})
	go func() { h.Run(hubCtx); close(hubDone) }()
	serveErr := make(chan error, 1)
	go func() { serveErr <- srv.Serve(lanLn) }()
	log.Info("onionchat started", "mode", cfg.Mode)

	var err error
	select {
	case <-ctx.Done():
	case err = <-serveErr:
		err = fmt.Errorf("serve: %w", err)
	}
	sctx, cancel := context.WithTimeout(context.Background(), shutdownTimeout)
	defer cancel()
	srv.Shutdown(sctx) // stops accepting; WebSockets are the hub's to close
	stopHub()
	<-hubDone
	log.Info("onionchat stopped")
	if errors.Is(err, http.ErrServerClosed) {
		err = nil
	}
	return err
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
