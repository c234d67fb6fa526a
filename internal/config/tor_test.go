package config_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/onionchat/onionchat/internal/config"
	"github.com/onionchat/onionchat/onion"
)

// The directories the configuration names reach tor's torrc: data_dir,
// which the configuration checks, and tor.runtime_dir, which onion's
// Validate checks. These tests hold every path the file accepts to what
// onion will write.

func TestTorPathsInjection(t *testing.T) {
	for _, c := range []struct{ file, key string }{
		{"data_dir = \"/var/lib/oc\\nSocksPort 0.0.0.0:9050\\n#\"\n", "data_dir"},
		{"data_dir = \"/var/lib/oc\\rSocksPort 9050\"\n", "data_dir"},
		{"data_dir = '/var/lib/oc#x'\n", "data_dir"},
		{"data_dir = '/var/lib/oc\\'\n", "data_dir"},
		{"data_dir = '/var/lib/oc '\n", "data_dir"},
		{"data_dir = \"/var/lib/oc\\u0085x\"\n", "data_dir"},
		{"[tor]\nruntime_dir = \"/run/oc\\nSocksPort 9050\"\n", "tor.runtime_dir"},
		{"[tor]\nruntime_dir = \"/run/o c\"\n", "tor.runtime_dir"},
		{"[tor]\nruntime_dir = \"run/oc\"\n", "tor.runtime_dir"},
		{"[tor]\nextra_torrc = [\"TestingTorNetwork 1\", \"Log notice stdout\\u000bSocksPort 9050\"]\n", "tor.extra_torrc"},
		{"[tor]\nextra_torrc = [\"TestingTorNetwork 1\", \"Log notice stdout \\\\\"]\n", "tor.extra_torrc"},
	} {
		_, err := config.Parse("t.toml", []byte(c.file))
		var e *config.Error
		if !errors.As(err, &e) || e.Key != c.key || e.Line == 0 {
			t.Errorf("%q: got %v, want an error on %s with its line", c.file, err, c.key)
		}
	}
	if _, err := config.Parse("t.toml", []byte("data_dir = \"/var/lib/onion chat\"\n[tor]\nruntime_dir = \"/run/onionchat\"\n")); err != nil {
		t.Errorf("a clean file: %v", err)
	}
}

// FuzzTorPathAgreesWithOnion: every data_dir and tor.runtime_dir the
// configuration accepts, onion accepts as a torrc value (and the runtime
// directory as the socket's), so that no check on the way is lost.
func FuzzTorPathAgreesWithOnion(f *testing.F) {
	for _, s := range []string{"/var/lib/onionchat", "/var/lib/oc\nSocksPort 9050\n#", "/a b", "/a#b", `/a\`, "/a\u0085", "/a\u2028b", " /a"} {
		f.Add(s)
	}
	base := config.Default()
	f.Fuzz(func(t *testing.T, dir string) {
		if dir == "" {
			return // the default: no directory written
		}
		c := base
		c.DataDir = dir
		if c.Validate() == nil {
			if err := onion.CheckTorrcValue(dir); err != nil {
				t.Fatalf("data_dir %q accepted by config, refused by onion: %v", dir, err)
			}
		}
		c = base
		c.Tor.RuntimeDir = dir
		if c.Validate() == nil {
			if err := onion.CheckTorrcValue(dir); err != nil || strings.ContainsAny(dir, " \t") {
				t.Fatalf("tor.runtime_dir %q accepted by config, refused by onion: %v", dir, err)
			}
		}
	})
}
