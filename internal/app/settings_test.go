package app

import (
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/onionchat/onionchat/hub"
	"github.com/onionchat/onionchat/internal/config"
	"github.com/onionchat/onionchat/onion"
)

// noEnv clears the variables DataDir and runtimeDir read.
func noEnv(t *testing.T) {
	for _, v := range []string{"STATE_DIRECTORY", "XDG_DATA_HOME", "RUNTIME_DIRECTORY"} {
		t.Setenv(v, "")
	}
}

// A file's values reach the parts.
func TestFileReachesParts(t *testing.T) {
	noEnv(t)
	c, err := config.Parse("c.toml", []byte(`data_dir = "/srv/oc"
[hub]
rate = 2.5
resume_window = "5m"
join_burst = 3
byte_rate = 65536
[web]
handshake_timeout = "4s"
[tor]
sandbox = "off"
pow_defense = "on"
safe_logging = false
max_streams = 8
runtime_dir = "/run/oc"
`))
	if err != nil {
		t.Fatal(err)
	}
	s, err := resolve(c)
	if err != nil {
		t.Fatal(err)
	}
	if s.dataDir != "/srv/oc" || s.hub.Rate != 2.5 || s.hub.ResumeWindow != 5*time.Minute || s.hub.JoinBurst != 3 || s.hub.ByteRate != 65536 ||
		s.hub.MaxConns != hub.DefaultMaxConns || s.web.HandshakeTimeout != 4*time.Second {
		t.Errorf("settings %+v", s)
	}
	o := s.onion
	if o.Sandbox != onion.FeatureOff || o.PoW != onion.FeatureOn || *o.SafeLogging || !*o.AvoidDiskWrites ||
		o.MaxStreams != 8 || o.RuntimeDir != "/run/oc" || o.DataDir != "/srv/oc" {
		t.Errorf("onion %+v", o)
	}
}

func TestDataDir(t *testing.T) {
	home := t.TempDir()
	t.Setenv("HOME", home)
	for _, tc := range []struct {
		dataDir, state, xdg, want string
	}{
		{"/srv/oc", "/var/lib/x", "/xdg", "/srv/oc"},
		{"", "/var/lib/onionchat:/var/lib/other", "/xdg", "/var/lib/onionchat"},
		{"", "", "/xdg", "/xdg/onionchat"},
		{"", "", "relative", filepath.Join(home, ".local/share/onionchat")}, // XDG: a relative path is ignored
		{"", "", "", filepath.Join(home, ".local/share/onionchat")},
	} {
		noEnv(t)
		t.Setenv("STATE_DIRECTORY", tc.state)
		t.Setenv("XDG_DATA_HOME", tc.xdg)
		c := config.Default()
		c.DataDir = tc.dataDir
		got, err := DataDir(c)
		if err != nil || got != tc.want {
			t.Errorf("%+v: got %q, %v", tc, got, err)
		}
		if dir, err := Check(c); err != nil || dir != got {
			t.Errorf("%+v: Check gives %q, %v; DataDir %q", tc, dir, err, got)
		}
	}
}

// The environment's directories reach tor's torrc as the keys they stand
// in for do: refused on onion's rule, naming the variable.
func TestEnvDirsChecked(t *testing.T) {
	for _, c := range []struct{ env, val, want string }{
		{"STATE_DIRECTORY", "/var/lib/oc\nSocksPort 0.0.0.0:9050\n#", "line break"},
		{"STATE_DIRECTORY", "var/lib/oc", "not absolute"},
		{"XDG_DATA_HOME", "/home/x/share\nSocksPort 9050", "line break"},
		{"RUNTIME_DIRECTORY", "/run/onionchat\nSocksPort 9050", "line break"},
		{"RUNTIME_DIRECTORY", "/run/onion chat", "white space"},
	} {
		noEnv(t)
		t.Setenv(c.env, c.val)
		_, err := Check(config.Default())
		if err == nil || !strings.HasPrefix(err.Error(), "environment: $"+c.env+": the path ") || !strings.Contains(err.Error(), c.want) {
			t.Errorf("$%s=%q: got %v, want an error naming the variable and %q", c.env, c.val, err, c.want)
		}
		// Set in the configuration, the variable is not read, so not checked.
		cfg := config.Default()
		cfg.DataDir, cfg.Tor.RuntimeDir = "/var/lib/onionchat", "/run/onionchat"
		if _, err := Check(cfg); err != nil {
			t.Errorf("$%s unused: %v", c.env, err)
		}
	}
}
