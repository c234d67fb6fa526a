package app

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/onionchat/onionchat/hub"
	"github.com/onionchat/onionchat/internal/cluster"
	"github.com/onionchat/onionchat/internal/config"
	"github.com/onionchat/onionchat/onion"
	"github.com/onionchat/onionchat/web"
)

// Check refuses what Run would refuse before it starts anything: a value
// out of range, a part's own rule broken, a directory from the
// environment unfit for tor's torrc. It returns the data directory Run
// would use.
func Check(cfg config.Config) (dataDir string, err error) {
	s, err := resolve(cfg)
	return s.dataDir, err
}

// settings are a configuration turned into each part's own: what Run
// starts. The file decodes into the parts' own types; what is left here
// is what comes from the environment or from another section.
type settings struct {
	dataDir string
	hub     hub.Config
	web     web.Config
	onion   onion.Config
	cluster *cluster.Config // nil: this instance alone
}

// resolve is the one place a config.Config becomes the parts' settings.
// The onion settings are resolved in every mode, so that a mistake in
// [tor] is found before it matters.
func resolve(cfg config.Config) (settings, error) {
	if err := cfg.Validate(); err != nil {
		return settings{}, err
	}
	dir, err := DataDir(cfg)
	if err != nil {
		return settings{}, err
	}
	tor := cfg.Tor
	tor.DataDir, tor.OnionbalanceFront = dir, cfg.Cluster.Front
	if tor.RuntimeDir, err = runtimeDir(cfg.Tor); err != nil {
		return settings{}, err
	}
	s := settings{dataDir: dir, hub: cfg.Hub, web: cfg.Web, onion: tor}
	if cfg.Cluster.On() {
		// The password file is read now, so that check-config finds a
		// file others can read before a start does.
		links := cfg.Cluster
		if err := links.ReadPassword(); err != nil {
			return settings{}, cfg.Locate("cluster", err)
		}
		s.cluster = &links
	}
	return s, nil
}

// DataDir returns the directory for keys and certificates: data_dir, else
// $STATE_DIRECTORY (systemd), else $XDG_DATA_HOME/onionchat, else
// ~/.local/share/onionchat. Run and every command that reads the data
// directory use it. A directory from the environment reaches tor's torrc
// as data_dir does, so it is refused on the same rule, naming the
// variable.
func DataDir(cfg config.Config) (string, error) {
	if cfg.DataDir != "" {
		return cfg.DataDir, nil
	}
	if d := os.Getenv("STATE_DIRECTORY"); d != "" {
		return fromEnv("STATE_DIRECTORY", strings.Split(d, ":")[0], onion.CheckTorrcValue)
	}
	if d := os.Getenv("XDG_DATA_HOME"); d != "" && filepath.IsAbs(d) {
		if _, err := fromEnv("XDG_DATA_HOME", d, onion.CheckTorrcValue); err != nil {
			return "", err
		}
		return filepath.Join(d, "onionchat"), nil
	}
	home, err := os.UserHomeDir()
	if err != nil {
		return "", fmt.Errorf("no data directory: set data_dir or $HOME: %w", err)
	}
	return filepath.Join(home, ".local", "share", "onionchat"), nil
}

// runtimeDir returns tor.runtime_dir, else $RUNTIME_DIRECTORY (systemd),
// else "" (onion makes a temporary directory).
func runtimeDir(t onion.Config) (string, error) {
	if d := os.Getenv("RUNTIME_DIRECTORY"); t.RuntimeDir == "" && d != "" {
		return fromEnv("RUNTIME_DIRECTORY", d, onion.CheckSocketPath)
	}
	return t.RuntimeDir, nil
}

// fromEnv returns dir, taken from the environment variable name, if it is
// absolute and passes onion's check.
func fromEnv(name, dir string, check func(string) error) (string, error) {
	err := check(dir)
	if err == nil && !filepath.IsAbs(dir) {
		err = errors.New("is not absolute")
	}
	if err != nil {
		return "", &config.Error{File: "environment", Key: "$" + name,
			Msg: fmt.Sprintf("the path %q %v; it would be written into tor's configuration", dir, err)}
	}
	return dir, nil
}
