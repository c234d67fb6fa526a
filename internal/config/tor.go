package config

import (
	"fmt"
	"path/filepath"
	"regexp"
	"strings"
	"time"
	"unicode"
)

// Tor configures the tor that onion mode starts. Every hardening option is
// on by default (onion.Conf's zero values); config.example.toml says what
// each one does.
type Tor struct {
	Path       string `toml:"path"`        // tor binary; empty: "tor" on $PATH
	RuntimeDir string `toml:"runtime_dir"` // the torrc, tor's control cookie and the socket; empty: $RUNTIME_DIRECTORY or a new temporary directory
	Ephemeral  bool   `toml:"ephemeral"`   // a fresh address every start, its key never on disk

	// Sandbox and PoWDefense are "auto", "on" or "off": onion.ParseFeature
	// reads them (internal/app reports its error with the line).
	Sandbox         string `toml:"sandbox"`
	PoWDefense      string `toml:"pow_defense"`
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

var memRe = regexp.MustCompile(`^[0-9]{1,6} ?(KB|MB|GB|KBytes|MBytes|GBytes)$`)

func (t *Tor) validate() error {
	if t.MaxStreams < 1 || t.MaxStreams > 65535 {
		return bad("tor.max_streams", "want 1 to 65535, not %d", t.MaxStreams)
	}
	if t.RuntimeDir != "" {
		if err := checkTorPath(t.RuntimeDir, true); err != nil {
			return bad("tor.runtime_dir", "%v", err)
		}
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
			if strings.ContainsFunc(l, unicode.IsControl) || strings.HasSuffix(l, `\`) {
				return bad("tor.extra_torrc", "%q has a control character or ends in '\\', which runs it into the next line", l)
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

// torrcUnsafe says what in s tor's torrc parser would read as structure
// (a new line, a comment, quoting, a continued line) or drop, or "" if
// nothing: directories onionchat is given become values of torrc lines.
// onion.CheckTorrcValue is the rule onion applies again when it writes the
// torrc; this textual copy lets the configuration name the key and line
// without importing onion, and is at least as strict (a test holds the
// two together).
func torrcUnsafe(s string) string {
	switch {
	case strings.ContainsAny(s, "\r\n"):
		return "a line break"
	case strings.ContainsFunc(s, unicode.IsControl):
		return "a control character"
	case strings.ContainsAny(s, "#\"\\"):
		return `'#', '"' or '\'`
	case strings.TrimSpace(s) != s:
		return "white space at one end"
	}
	return ""
}

// checkTorPath checks a directory that ends up in tor's torrc: absolute
// and torrc-safe, and, for the runtime directory, which holds the unix
// socket tor forwards visitors to, without white space.
func checkTorPath(p string, socket bool) error {
	if !filepath.IsAbs(p) {
		return fmt.Errorf("want an absolute path, not %q", p)
	}
	if why := torrcUnsafe(p); why != "" {
		return fmt.Errorf("the path %q has %s; it is written into tor's configuration, where that could add lines of its own", p, why)
	}
	if socket && strings.ContainsAny(p, " \t") {
		return fmt.Errorf("the path %q has white space, which tor's HiddenServicePort cannot take", p)
	}
	return nil
}

// checkDataDir checks data_dir: empty (the default) or an absolute,
// torrc-safe path (tor's state and the service key live under it).
func checkDataDir(p string) error {
	if p == "" {
		return nil
	}
	return checkTorPath(p, false)
}
