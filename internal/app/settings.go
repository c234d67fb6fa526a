package app

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/onionchat/onionchat/hub"
	"github.com/onionchat/onionchat/internal/cluster"
	"github.com/onionchat/onionchat/internal/config"
	"github.com/onionchat/onionchat/onion"
	"github.com/onionchat/onionchat/web"
)

// Load reads the configuration file at path over Defaults; "" means no
// file, the defaults alone.
func Load(path string) (config.Config, error) {
	if path == "" {
		return Defaults(), nil
	}
	return config.Load(path, Defaults())
}

// Defaults is the configuration without a file: the format's own
// defaults (config.Default) and every part's settings at the part's own
// default constants, which are written nowhere else. A new section's
// defaults go here, from its part.
func Defaults() config.Config {
	c := config.Default()
	c.Hub = config.Hub{
		MaxFrameBytes:   hub.DefaultMaxFrameBytes,
		Rate:            hub.DefaultRate,
		Burst:           hub.DefaultBurst,
		MaxConns:        hub.DefaultMaxConns,
		MaxConnsPerPeer: hub.DefaultMaxConnsPerPeer,
		MaxRooms:        hub.DefaultMaxRooms,
		MaxMembers:      hub.DefaultMaxMembers,
		SendQueue:       hub.DefaultSendQueue,
		SendQueueBytes:  hub.DefaultSendQueueBytes,
		PingInterval:    dur(hub.DefaultPingInterval),
		IdleTimeout:     dur(hub.DefaultIdleTimeout),
		JoinTimeout:     dur(hub.DefaultJoinTimeout),
		WriteTimeout:    dur(hub.DefaultWriteTimeout),
		ResumeWindow:    dur(hub.DefaultResumeWindow),
		JoinRate:        hub.DefaultJoinRate,
		JoinBurst:       hub.DefaultJoinBurst,
		ByteRate:        hub.DefaultByteRate,
		MaxFileBytes:    hub.DefaultMaxFileBytes,
	}
	c.Web = config.Web{HandshakeTimeout: dur(web.DefaultHandshakeTimeout)}
	o := onion.Config{}.WithDefaults()
	c.Tor.Sandbox, c.Tor.PoWDefense = string(o.Sandbox), string(o.PoW)
	c.Tor.SafeLogging, c.Tor.AvoidDiskWrites, c.Tor.IntroDoSDefense = *o.SafeLogging, *o.AvoidDiskWrites, *o.IntroDoSDefense
	c.Tor.MaxStreams = onion.DefaultMaxStreams
	c.Tor.MaxMemInQueues = onion.DefaultMaxMemInQueues
	c.Tor.PublishTimeout = dur(onion.DefaultPublishTimeout)
	c.Cluster.DeadAfter = dur(cluster.DefaultDeadAfter)
	return c
}

// Check refuses what Run would refuse before it starts anything: a value
// out of range, a part's own rule broken, a directory from the
// environment unfit for tor's torrc. It returns the data directory Run
// would use.
func Check(cfg config.Config) (dataDir string, err error) {
	s, err := resolve(cfg)
	return s.dataDir, err
}

// settings are a configuration turned into each part's own: what Run
// starts. A mode-independent part (such as a later [cluster] section)
// adds its field here and its function below.
type settings struct {
	dataDir string
	hub     hub.Config
	web     web.Config
	onion   onion.Config
	cluster *cluster.Options // nil: this instance alone
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
	tor, err := onionConf(cfg, dir)
	if err != nil {
		return settings{}, err
	}
	links, err := clusterOptions(cfg)
	if err != nil {
		return settings{}, err
	}
	return settings{dataDir: dir, hub: hubConfig(cfg.Hub), web: webConfig(cfg.Web), onion: tor, cluster: links}, nil
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
func runtimeDir(t config.Tor) (string, error) {
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

func hubConfig(h config.Hub) hub.Config {
	return hub.Config{
		MaxFrameBytes:   h.MaxFrameBytes,
		Rate:            h.Rate,
		Burst:           h.Burst,
		MaxConns:        h.MaxConns,
		MaxConnsPerPeer: h.MaxConnsPerPeer,
		MaxRooms:        h.MaxRooms,
		MaxMembers:      h.MaxMembers,
		SendQueue:       h.SendQueue,
		SendQueueBytes:  h.SendQueueBytes,
		PingInterval:    h.PingInterval.Duration,
		IdleTimeout:     h.IdleTimeout.Duration,
		JoinTimeout:     h.JoinTimeout.Duration,
		WriteTimeout:    h.WriteTimeout.Duration,
		ResumeWindow:    h.ResumeWindow.Duration,
		JoinRate:        h.JoinRate,
		JoinBurst:       h.JoinBurst,
		ByteRate:        h.ByteRate,
		MaxFileBytes:    h.MaxFileBytes,
	}
}

func webConfig(w config.Web) web.Config {
	return web.Config{HandshakeTimeout: w.HandshakeTimeout.Duration}
}

// onionConf turns [tor] into onion's settings; onion reads "auto", "on"
// and "off", and its error is reported with the key's line.
func onionConf(cfg config.Config, dataDir string) (onion.Config, error) {
	t := cfg.Tor
	sandbox, pow := onion.Feature(t.Sandbox), onion.Feature(t.PoWDefense)
	for key, f := range map[string]onion.Feature{"tor.sandbox": sandbox, "tor.pow_defense": pow} {
		if f != onion.FeatureAuto && f != onion.FeatureOn && f != onion.FeatureOff {
			return onion.Config{}, cfg.Errorf(key, "want \"auto\", \"on\" or \"off\", not %q", string(f))
		}
	}
	rt, err := runtimeDir(t)
	if err != nil {
		return onion.Config{}, err
	}
	return onion.Config{
		TorPath:           t.Path,
		DataDir:           dataDir,
		RuntimeDir:        rt,
		Ephemeral:         t.Ephemeral,
		Sandbox:           sandbox,
		PoW:               pow,
		SafeLogging:       new(t.SafeLogging),
		AvoidDiskWrites:   new(t.AvoidDiskWrites),
		IntroDoSDefense:   new(t.IntroDoSDefense),
		MaxStreams:        t.MaxStreams,
		MaxMemInQueues:    t.MaxMemInQueues,
		PublishTimeout:    t.PublishTimeout.Duration,
		ExtraTorrc:        t.ExtraTorrc,
		OnionbalanceFront: cfg.Cluster.Front,
	}, nil
}

// clusterOptions turns [cluster] into the links' options, or nil when the
// section is off; cluster's rules (no link in clear off the machine) are
// reported with the key's line, before anything starts.
func clusterOptions(cfg config.Config) (*cluster.Options, error) {
	c := cfg.Cluster
	if !c.On() {
		return nil, nil
	}
	o := &cluster.Options{Listen: c.Listen, Peers: c.Peers, URL: c.URL, CertFile: c.TLSCert, KeyFile: c.TLSKey,
		CAFile: c.TLSCA, User: c.User, DeadAfter: c.DeadAfter.Duration}
	if c.PasswordFile != "" {
		fi, err := os.Stat(c.PasswordFile)
		if err != nil {
			return nil, cfg.Errorf("cluster.password_file", "%v", err)
		}
		if m := fi.Mode().Perm(); m&0o077 != 0 {
			return nil, cfg.Errorf("cluster.password_file", "%s can be read by others (mode %04o): chmod 600 it", c.PasswordFile, m)
		}
		b, err := os.ReadFile(c.PasswordFile)
		if err != nil {
			return nil, cfg.Errorf("cluster.password_file", "%v", err)
		}
		if o.Password = strings.TrimSpace(string(b)); o.Password == "" || strings.ContainsAny(o.Password, "\r\n") {
			return nil, cfg.Errorf("cluster.password_file", "want one line of password in %s", c.PasswordFile)
		}
	}
	if err := o.Check(); err != nil {
		var oe *cluster.OptionError
		if errors.As(err, &oe) {
			return nil, cfg.Errorf("cluster."+oe.Key, "%s", oe.Msg)
		}
		return nil, err
	}
	return o, nil
}

func dur(d time.Duration) config.Duration { return config.Duration{Duration: d} }
