// Package app runs the appliance: it is the one place where a
// configuration becomes what each part starts with (settings.go: what
// the file cannot say, such as the data directory from the environment
// or the cluster's password), where each mode opens its listener and
// says what the owner needs to know (modes.go), and where the parts are
// started and, when the context ends, stopped in order.
//
// It owns the wiring and the lifecycle and nothing else: limits live in
// hub, HTTP in web, Tor in onion, the file format in internal/config.
//
// A part's new setting touches the part alone (its Config's field, tag,
// default and range) and config.example.toml. A new section for a part
// that serves every mode (as [cluster] did) is a field of config.Config
// holding the part's own Config, a field of settings filled in resolve,
// and, in Run, its start and stop around the hub's.
package app

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"os/signal"
	"runtime"
	"runtime/debug"
	"runtime/metrics"
	"syscall"
	"time"

	"github.com/onionchat/onionchat/hub"
	"github.com/onionchat/onionchat/internal/config"
	"github.com/onionchat/onionchat/web"
)

// shutdownTimeout bounds the HTTP server's graceful shutdown.
const shutdownTimeout = 5 * time.Second

// Run serves cfg until ctx ends, then closes every client with 1001 and
// returns nil; an end of ctx during start-up is a stop too, and returns
// nil. Out receives what the owner needs to see (addresses,
// fingerprints); log receives start, stop and errors. Nothing starts if
// cfg is refused (see Check).
func Run(ctx context.Context, cfg config.Config, out io.Writer, log *slog.Logger) error {
	// A relay's memory is mostly idle connections, and on a 512 MB Pi
	// memory is scarcer than CPU: collect at 50% heap growth rather than
	// Go's 100%, unless the owner set GOGC. (bench: ~11 instead of ~13 KiB
	// per idle connection.)
	if os.Getenv("GOGC") == "" {
		debug.SetGCPercent(50)
	}
	s, err := resolve(cfg)
	if err != nil {
		return err
	}
	// SIGUSR1 is caught before the owner is told anything (a "Serving"
	// line, the start): its default action would end the process. One
	// sent before housekeeping runs waits in the channel.
	usr1 := make(chan os.Signal, 1)
	signal.Notify(usr1, syscall.SIGUSR1)
	defer signal.Stop(usr1)
	attach, unlink, err := linkCluster(&s, log)
	if err != nil {
		return err
	}
	defer unlink() // after the hub has stopped: its members' leaves go out first
	modes, err := startModes(ctx, cfg, s, out, log)
	if err != nil && ctx.Err() != nil {
		// Stopped while starting (systemctl stop as tor bootstraps): a
		// stop asked for, not a failure for the service manager to retry.
		log.Info("onionchat stopped during start-up")
		return nil
	}
	if err != nil {
		return err
	}
	for _, m := range modes {
		s.hub.ServerID = m.serverID // in both mode the onion address: one id for one hub
		s.web.Hosts = append(s.web.Hosts, m.hosts...)
	}
	s.hub.Wire, s.hub.Logger = web.Wire{}, log
	h := hub.New(s.hub)
	if err := attach(h); err != nil {
		closeModes(modes)
		return err
	}
	s.web.Hub, s.web.Logger = h, log
	handler := web.New(s.web)
	defer housekeeping(usr1, h, handler, log)()
	log.Info("onionchat started", "mode", cfg.Mode)
	err = serve(ctx, h, handler, modes)
	closeModes(modes)
	if err != nil {
		log.Error("onionchat stopped", "err", err)
		return err
	}
	log.Info("onionchat stopped")
	return nil
}

// serve runs the hub, and a web server on each mode's listener, until ctx
// ends, a server fails or a mode stops by itself; it then stops the
// servers and the hub, in that order, and returns why (nil: ctx ended).
func serve(ctx context.Context, h *hub.Hub, handler *web.Handler, modes []mode) error {
	hubCtx, stopHub := context.WithCancel(context.Background())
	hubDone := make(chan struct{})
	go func() { h.Run(hubCtx); close(hubDone) }()
	failed := make(chan error, 2*len(modes))
	var servers []*http.Server
	for _, m := range modes {
		ln := handler.Listener(m.ln)
		if m.tls != nil {
			ln = tls.NewListener(ln, m.tls)
		}
		srv := handler.Server()
		servers = append(servers, srv)
		go func() { failed <- fmt.Errorf("serve: %w", srv.Serve(ln)) }()
		if m.done != nil {
			go func() { <-m.done; failed <- m.err() }() // done is closed by m.close at the latest
		}
	}
	var err error
	select {
	case <-ctx.Done():
	case err = <-failed:
	}
	sctx, cancel := context.WithTimeout(context.Background(), shutdownTimeout)
	defer cancel()
	for _, srv := range servers {
		srv.Shutdown(sctx) // stops accepting; WebSockets are the hub's to close
	}
	stopHub()
	<-hubDone
	if errors.Is(err, http.ErrServerClosed) {
		err = nil
	}
	return err
}

// memSamples are the runtime metrics the SIGUSR1 line reports.
var memSamples = []metrics.Sample{
	{Name: "/memory/classes/heap/objects:bytes"},
	{Name: "/memory/classes/heap/stacks:bytes"},
}

// housekeeping answers SIGUSR1 (on usr1) with a line of counts (never a
// name, a room or an address), and gives memory back to the OS when many
// sessions (live or away) have ended, or the hub has forgotten everything
// (no session, none away, no room), so that a small machine recovers from
// a busy hour. Away sessions and rooms outlive the last connection by the
// resume window; collecting only when connections reach zero left what
// they held as uncollected garbage until Go's own two-minute collection.
func housekeeping(usr1 <-chan os.Signal, h *hub.Hub, handler *web.Handler, log *slog.Logger) (stop func()) {
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
				st := h.Stats()
				n := st.Sessions + st.Away
				peak = max(peak, n)
				if peak >= 64 && n <= peak/2 || n == 0 && st.Rooms == 0 && peak > 0 {
					// Two collections: the first moves pooled buffers to
					// the pools' victim caches, the second frees them.
					runtime.GC()
					debug.FreeOSMemory()
					peak = n
				}
			}
		}
	}()
	return func() { close(done) }
}
