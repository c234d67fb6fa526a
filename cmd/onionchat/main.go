// Command onionchat is a self-hosted group chat appliance: it publishes an
// end-to-end encrypted chat page and its relay as a Tor onion service, or
// over HTTPS on a LAN. See README.md.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"github.com/onionchat/onionchat/internal/app"
	"github.com/onionchat/onionchat/internal/config"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	if errors.Is(err, flag.ErrHelp) {
		os.Exit(0)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "onionchat:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("onionchat", flag.ContinueOnError)
	fs.SetOutput(stderr)
	cfgPath := fs.String("config", "", "TOML configuration `file` (see config.example.toml); none: defaults")
	mode := fs.String("mode", "", "onion, lan or both (overrides mode)")
	listen := fs.String("listen", "", "LAN mode `host:port` (overrides lan.listen)")
	dataDir := fs.String("data-dir", "", "`directory` for keys and certificate (overrides data_dir)")
	fs.Usage = func() {
		fmt.Fprintf(stderr, "Usage: onionchat [flags]\n\nFlags:\n")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return err
	}
	cfg := config.Default()
	if *cfgPath != "" {
		c, err := config.Load(*cfgPath)
		if err != nil {
			return err
		}
		cfg = c
	}
	if *mode != "" {
		cfg.Mode = *mode
	}
	if *listen != "" {
		cfg.LAN.Listen = *listen
	}
	if *dataDir != "" {
		cfg.DataDir = *dataDir
	}
	if err := cfg.Validate(); err != nil {
		return err
	}
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))
	return app.Run(ctx, cfg, stdout, log)
}
