package app

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/onionchat/onionchat/hub"
	"github.com/onionchat/onionchat/internal/config"
	"github.com/onionchat/onionchat/onion"
	"github.com/onionchat/onionchat/web"
)

// noEnv clears the variables DataDir and runtimeDir read.
func noEnv(t *testing.T) {
	for _, v := range []string{"STATE_DIRECTORY", "XDG_DATA_HOME", "RUNTIME_DIRECTORY"} {
		t.Setenv(v, "")
	}
}

// config.example.toml documents every key at its default: read over
// nothing, it is Defaults, section by section, so the numbers a reader
// sees there are the parts' own constants and config.Default's.
func TestExampleIsDefaults(t *testing.T) {
	data, err := os.ReadFile("../../config.example.toml")
	if err != nil {
		t.Fatal(err)
	}
	got, err := config.Parse("config.example.toml", data, config.Config{})
	if err != nil {
		t.Fatal(err)
	}
	want := Defaults()
	g, w := reflect.ValueOf(got), reflect.ValueOf(want)
	for _, f := range reflect.VisibleFields(g.Type()) {
		if !f.IsExported() {
			continue // where the file set each key
		}
		if a, b := g.FieldByIndex(f.Index).Interface(), w.FieldByIndex(f.Index).Interface(); !reflect.DeepEqual(a, b) {
			t.Errorf("%s: config.example.toml says\n  %+v\nthe parts' defaults are\n  %+v", f.Tag.Get("toml"), a, b)
		}
	}
}

// Defaults hands each part settings that mean what the part's zero
// values mean: no default differs between the file and the part.
func TestDefaultsAreThePartsOwn(t *testing.T) {
	noEnv(t)
	d := Defaults()
	if err := d.Validate(); err != nil {
		t.Fatalf("Defaults invalid: %v", err)
	}
	got, zero := hub.New(hubConfig(d.Hub)).Limits(), hub.New(hub.Config{}).Limits()
	got.Logger, zero.Logger = nil, nil
	if !reflect.DeepEqual(got, zero) {
		t.Errorf("hub from Defaults:\n  %+v\nhub's own defaults:\n  %+v", got, zero)
	}
	if w := webConfig(d.Web); w.HandshakeTimeout != web.DefaultHandshakeTimeout {
		t.Errorf("web.handshake_timeout %v, web.DefaultHandshakeTimeout %v", w.HandshakeTimeout, web.DefaultHandshakeTimeout)
	}
	o, err := onionConf(d, "/var/lib/onionchat")
	if err != nil {
		t.Fatal(err)
	}
	want := onion.Config{DataDir: "/var/lib/onionchat", ExtraTorrc: []string{}}.WithDefaults()
	if !reflect.DeepEqual(o, want) {
		t.Errorf("onion from Defaults:\n  %+v\nonion's zero Conf with its documented defaults:\n  %+v", o, want)
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
`), Defaults())
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

// onion reads "auto", "on" and "off"; its refusal names the file, line
// and key like the format's own errors, in check-config as in a start.
func TestFeatureErrorNamesLine(t *testing.T) {
	noEnv(t)
	for _, tc := range []struct{ doc, want string }{
		{"[tor]\nsandbox = \"yes\"\n", `c.toml:2: tor.sandbox: want "auto", "on" or "off", not "yes"`},
		{"mode = \"lan\"\n[tor]\n\npow_defense = \"\"\n", `c.toml:4: tor.pow_defense: want "auto", "on" or "off", not ""`},
	} {
		c, err := config.Parse("c.toml", []byte(tc.doc), Defaults())
		if err != nil {
			t.Fatalf("%q: the format itself refused it: %v", tc.doc, err)
		}
		if _, err := Check(c); err == nil || err.Error() != tc.want {
			t.Errorf("%q: got %v, want %s", tc.doc, err, tc.want)
		}
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
		c := Defaults()
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
		_, err := Check(Defaults())
		if err == nil || !strings.HasPrefix(err.Error(), "environment: $"+c.env+": the path ") || !strings.Contains(err.Error(), c.want) {
			t.Errorf("$%s=%q: got %v, want an error naming the variable and %q", c.env, c.val, err, c.want)
		}
		// Set in the configuration, the variable is not read, so not checked.
		cfg := Defaults()
		cfg.DataDir, cfg.Tor.RuntimeDir = "/var/lib/onionchat", "/run/onionchat"
		if _, err := Check(cfg); err != nil {
			t.Errorf("$%s unused: %v", c.env, err)
		}
	}
}
