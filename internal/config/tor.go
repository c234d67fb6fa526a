package config

import (
	"regexp"
	"strings"
	"time"
)

// Tor configures the tor that onion mode starts. Every hardening option is
// on by default; config.example.toml says what each one does.
type Tor struct {
	Path       string `toml:"path"`        // tor binary; empty: "tor" on $PATH
	RuntimeDir string `toml:"runtime_dir"` // tor's working files; empty: $RUNTIME_DIRECTORY or a new temporary directory
	Ephemeral  bool   `toml:"ephemeral"`   // a fresh address every start, no key on disk

	Sandbox         string `toml:"sandbox"`     // "auto", "on" or "off"
	PoWDefense      string `toml:"pow_defense"` // "auto", "on" or "off"
	SafeLogging     bool   `toml:"safe_logging"`
	AvoidDiskWrites bool   `toml:"avoid_disk_writes"`
	IntroDoSDefense bool   `toml:"intro_dos_defense"`
	MaxStreams      int    `toml:"max_streams"` // streams per rendezvous circuit; over it the circuit is closed
	MaxMemInQueues  string `toml:"max_mem_in_queues"`

	PublishTimeout Duration `toml:"publish_timeout"` // from start until the descriptor is uploaded

	// ExtraTorrc lines are appended to the torrc. They exist for tests on a
	// private Tor network and are refused unless they contain
	// "TestingTorNetwork 1".
	ExtraTorrc []string `toml:"extra_torrc"`
}

func defaultTor() Tor {
	return Tor{
		Sandbox:         "auto",
		PoWDefense:      "auto",
		SafeLogging:     true,
		AvoidDiskWrites: true,
		IntroDoSDefense: true,
		MaxStreams:      32,
		MaxMemInQueues:  "64 MB",
		PublishTimeout:  Duration{3 * time.Minute},
		ExtraTorrc:      []string{},
	}
}

var memRe = regexp.MustCompile(`^[0-9]{1,6} ?(KB|MB|GB|KBytes|MBytes|GBytes)$`)

func (t *Tor) validate() error {
	for _, o := range []struct{ key, v string }{{"tor.sandbox", t.Sandbox}, {"tor.pow_defense", t.PoWDefense}} {
		switch o.v {
		case "auto", "on", "off":
		default:
			return bad(o.key, `want "auto", "on" or "off", not %q`, o.v)
		}
	}
	if t.MaxStreams < 1 || t.MaxStreams > 65535 {
		return bad("tor.max_streams", "want 1 to 65535, not %d", t.MaxStreams)
	}
	if !memRe.MatchString(t.MaxMemInQueues) {
		return bad("tor.max_mem_in_queues", `want a size such as "64 MB", not %q`, t.MaxMemInQueues)
	}
	if d := t.PublishTimeout.Duration; d < time.Second || d > time.Hour {
		return bad("tor.publish_timeout", "want 1s to 1h, not %v", d)
	}
	if len(t.ExtraTorrc) > 0 {
		testing := false
		for _, l := range t.ExtraTorrc {
			if strings.ContainsAny(l, "\r\n") {
				return bad("tor.extra_torrc", "one torrc line per entry: %q has a line break", l)
			}
			if strings.Join(strings.Fields(l), " ") == "TestingTorNetwork 1" {
				testing = true
			}
		}
		if !testing {
			return bad("tor.extra_torrc", `is for private test networks only and needs the line "TestingTorNetwork 1"`)
		}
	}
	return nil
}
