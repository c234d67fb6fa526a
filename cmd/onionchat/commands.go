package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"path/filepath"
	"runtime"
	"runtime/debug"

	"github.com/onionchat/onionchat/internal/app"
	"github.com/onionchat/onionchat/internal/cli"
	"github.com/onionchat/onionchat/internal/config"
	"github.com/onionchat/onionchat/internal/qrterm"
	"github.com/onionchat/onionchat/onion"
)

// flags returns a flag set with the flags every command shares (--config,
// --data-dir) and a func that loads the configuration they name.
func flags(name string, stderr io.Writer) (*flag.FlagSet, func() (config.Config, error)) {
	fs := cli.FlagSet(name, usage, stderr)
	path := fs.String("config", "", "TOML configuration `file` (see config.example.toml); none: defaults")
	dataDir := fs.String("data-dir", "", "`directory` for keys and certificate (overrides data_dir)")
	return fs, func() (config.Config, error) {
		cfg, err := config.Load(*path)
		if err != nil || *dataDir == "" {
			return cfg, err
		}
		abs, err := filepath.Abs(*dataDir)
		if err != nil {
			return cfg, err
		}
		// The data directory becomes values of tor's torrc.
		if err := onion.CheckTorrcValue(abs); err != nil {
			return cfg, fmt.Errorf("--data-dir: the path %q %w; it would be written into tor's configuration", abs, err)
		}
		cfg.DataDir = abs
		return cfg, nil
	}
}

// serve is the command without a name: onionchat itself.
func serve(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs, load := flags("onionchat", stderr)
	mode := fs.String("mode", "", "onion, lan, both or local (overrides mode)")
	listen := fs.String("listen", "", "`address` of the LAN or local server (overrides lan.listen or local.listen)")
	ephemeral := fs.Bool("ephemeral", false, "a new onion address for this run, no key kept on disk (overrides tor.ephemeral)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	cfg, err := load()
	if err != nil {
		return err
	}
	if *mode != "" {
		cfg.Mode = *mode
	}
	if *listen != "" && cfg.Mode == config.ModeLocal {
		cfg.Local.Listen = *listen
	} else if *listen != "" {
		cfg.LAN.Listen = *listen
	}
	if *ephemeral {
		cfg.Tor.Ephemeral = true
	}
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))
	return app.Run(ctx, cfg, stdout, log)
}

// loadDataDir parses args with the shared flags and returns the data
// directory the configuration names, resolved as app.Run resolves it,
// after the same checks.
func loadDataDir(fs *flag.FlagSet, load func() (config.Config, error), args []string) (config.Config, string, error) {
	if err := fs.Parse(args); err != nil {
		return config.Config{}, "", err
	}
	cfg, err := load()
	if err != nil {
		return cfg, "", err
	}
	dir, err := app.Check(cfg)
	return cfg, dir, err
}

func versionString() string {
	v := version
	if v == "dev" {
		if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
			v = bi.Main.Version
		}
	}
	return fmt.Sprintf("%s (%s, %s/%s)", v, runtime.Version(), runtime.GOOS, runtime.GOARCH)
}

func checkConfig(args []string, stdout, stderr io.Writer) error {
	fs, load := flags("check-config", stderr)
	cfg, dir, err := loadDataDir(fs, load, args)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "configuration OK: mode %s, data directory %s\n", cfg.Mode, dir)
	return nil
}

func address(args []string, stdout, stderr io.Writer) error {
	fs, load := flags("address", stderr)
	_, dir, err := loadDataDir(fs, load, args)
	if err != nil {
		return err
	}
	addr, err := onion.LoadAddress(dir)
	if errors.Is(err, onion.ErrNoKey) {
		return fmt.Errorf("no onion key in %s yet: start onionchat once in onion mode to create it", dir)
	}
	if err != nil {
		return err
	}
	u := "http://" + addr + "/"
	if qr, err := qrterm.Render(u); err == nil {
		fmt.Fprint(stdout, qr)
	}
	fmt.Fprintln(stdout, u)
	return nil
}

// applyHint says when a client-auth change reaches a running onionchat.
const applyHint = "A running onionchat notices this within seconds. With tor.sandbox = \"off\", a key added is\n" +
	"reloaded live: tor loads it, onionchat checks that tor loaded every key, and chats continue.\n" +
	"A key removed, or any change with tor's sandbox on (the default where tor supports it), stops\n" +
	"onionchat rather than serve the old set (a revoked friend could still reach the introduction\n" +
	"points a reload keeps): systemd restarts it with the new set and a new tor; started by hand,\n" +
	"start it again. Open pages reconnect by themselves."

func auth(args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		return errors.New("auth needs add NAME, list or remove NAME")
	}
	verb, args := args[0], args[1:]
	var name string
	if (verb == "add" || verb == "remove") && len(args) > 0 && len(args[0]) > 0 && args[0][0] != '-' {
		name, args = args[0], args[1:]
	}
	fs, load := flags("auth "+verb, stderr)
	open := false
	if verb == "remove" {
		fs.BoolVar(&open, "open", false, "with auth remove: allow removing the last key, which lets anyone with the address in")
	}
	_, dir, err := loadDataDir(fs, load, args)
	if err != nil {
		return err
	}
	switch {
	case verb == "list" && name == "":
		names, err := onion.Clients(dir)
		if err != nil {
			return err
		}
		if len(names) == 0 {
			fmt.Fprintln(stdout, "no authorized clients: anyone with the address can reach the service")
		}
		for _, n := range names {
			fmt.Fprintln(stdout, n)
		}
		return nil
	case verb == "add" && name != "":
		k, err := onion.AddClient(dir, name)
		if err != nil {
			return err
		}
		addr, _ := onion.LoadAddress(dir)
		fmt.Fprintf(stdout, "Authorized %s. Only holders of a client key can reach http://%s/ now.\n\n", name, addr)
		fmt.Fprintf(stdout, "Give %s this key, privately; Tor Browser asks for it when they open the address:\n\n  %s\n\n", name, k.Private)
		if qr, err := qrterm.Render(k.Private); err == nil {
			fmt.Fprint(stdout, qr)
		}
		fmt.Fprintf(stdout, "\nFor a tor client (ClientOnionAuthDir), the line is:\n  %s\n\n", onion.ClientAuthLine(addr, k))
		fmt.Fprintln(stdout, "The key is not stored here.")
		fmt.Fprintln(stdout, applyHint)
		return nil
	case verb == "remove" && name != "":
		err := onion.RemoveClient(dir, name, open)
		if errors.Is(err, onion.ErrLastClient) {
			return fmt.Errorf("%w.\nTo turn client authorization off and let anyone with the address in, run: onionchat auth remove %s --open", err, name)
		}
		if err != nil {
			return err
		}
		fmt.Fprintf(stdout, "Removed %s.\n", name)
		if names, _ := onion.Clients(dir); len(names) == 0 {
			fmt.Fprintln(stdout, "Client authorization is off now: anyone who has the address can reach the service.")
		}
		fmt.Fprintln(stdout, applyHint)
		return nil
	}
	return errors.New("auth needs add NAME, list or remove NAME")
}
