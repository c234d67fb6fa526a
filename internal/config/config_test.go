package config

import (
	"errors"
	"os"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/pelletier/go-toml/v2"
)

func TestNoFileGivesDefaults(t *testing.T) {
	c, err := Parse("empty.toml", nil)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(c, Default()) {
		t.Fatalf("empty file: %+v, want defaults", c)
	}
	d := Default()
	if err := d.Validate(); err != nil {
		t.Fatalf("defaults invalid: %v", err)
	}
}

// The example file documents every key with its default value.
func TestExampleIsDefaultsAndComplete(t *testing.T) {
	data, err := os.ReadFile("../../config.example.toml")
	if err != nil {
		t.Fatal(err)
	}
	c, err := Parse("config.example.toml", data)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(c, Default()) {
		t.Fatalf("config.example.toml differs from Default():\n%+v\n%+v", c, Default())
	}
	lines, _ := keyLines(data)
	var all map[string]any
	b, _ := toml.Marshal(Default())
	toml.Unmarshal(b, &all)
	var walk func(prefix string, m map[string]any)
	walk = func(prefix string, m map[string]any) {
		for k, v := range m {
			if sub, ok := v.(map[string]any); ok {
				walk(prefix+k+".", sub)
				continue
			}
			if _, ok := lines[prefix+k]; !ok {
				t.Errorf("config.example.toml does not document %s", prefix+k)
			}
		}
	}
	walk("", all)
}

func TestErrorsNameKeyAndLine(t *testing.T) {
	for _, tc := range []struct{ doc, want string }{
		{"mode = \"lan\"\n\n[hub]\nmax_connz = 5\n", "c.toml:4: hub.max_connz: unknown key"},
		{"colour = \"red\"\n", "c.toml:1: colour: unknown key"},
		{"[hubb]\nrate = 1\n", "c.toml:1: hubb: unknown section"},
		{"[hub]\nmax_conns = \"many\"\n", "c.toml:2: hub.max_conns: want an integer, not a TOML string"},
		{"[hub]\n\nping_interval = 30\n", `c.toml:3: hub.ping_interval: want a duration such as "30s"`},
		{"[hub]\nping_interval = \"soon\"\n", `c.toml:2: hub.ping_interval: want a duration`},
		{"# comment\n[hub]\nmax_conns = 0\n", "c.toml:3: hub.max_conns: want 1 to"},
		{"[hub]\nrate = -2.5\n", "c.toml:2: hub.rate: want frames per second above 0"},
		{"[hub]\nping_interval = \"2m\"\n", "hub.idle_timeout: must be longer than hub.ping_interval"},
		{"mode = \"tor\"\n", `c.toml:1: mode: want "onion", "lan", "both" or "local", not "tor"`},
		{"[local]\nlisten = \"0.0.0.0:8080\"\n", `c.toml:2: local.listen: local mode serves plain HTTP, so only loopback addresses`},
		{"[local]\nlisten = \"unix:relative.sock\"\n", `c.toml:2: local.listen: want unix:/absolute/path`},
		{"[lan]\nlisten = \"8443\"\n", "c.toml:2: lan.listen: want host:port"},
		{"[lan]\ncert_file = \"/x.pem\"\n", "c.toml:2: lan.cert_file: set both"},
		{"data_dir = \"relative\"\n", "c.toml:1: data_dir: want an absolute path"},
		{"[tor]\nextra_torrc = [\"SocksPort 9050\"]\n", `c.toml:2: tor.extra_torrc: is for private test networks only`},
		{"[tor]\nsandbox = \"yes\"\n", `c.toml:2: tor.sandbox: want "auto", "on" or "off"`},
		{"mode = \"lan\n", "c.toml:1: basic strings cannot have new lines"},
		{"[hub]\nrate = 5.0\nhistory_messages = 50\n", "c.toml:3: hub.history_messages: was removed: rooms keep recent frames for hub.resume_window"},
		{"[hub]\nhistory_ttl = \"1h\"\n", "c.toml:2: hub.history_ttl: was removed: rooms keep recent frames for hub.resume_window"},
		{"[hub]\njoin_rate = 0.0\n", "c.toml:2: hub.join_rate: want joins per second above 0"},
		{"[hub]\njoin_rate = \"fast\"\n", "c.toml:2: hub.join_rate: want a number, not a TOML string"},
		{"[hub]\njoin_burst = 0\n", "c.toml:2: hub.join_burst: want 1 to"},
		{"[hub]\nresume_window = 180\n", `c.toml:2: hub.resume_window: want a duration such as "30s"`},
		{"[hub]\nresume_window = \"1ms\"\n", "c.toml:2: hub.resume_window: want 10ms to 720h"},
		{"[local]\nhosts = [\"a b\"]\n", `c.toml:2: local.hosts: "a b": a host name has only`},
		{"[local]\nhosts = [\"x.onion:0\"]\n", `c.toml:2: local.hosts: "x.onion:0": bad port`},
		{"[local]\nhosts = [\"[1.2.3.4]\"]\n", `c.toml:2: local.hosts: "[1.2.3.4]" is not a bracketed IPv6`},
		{"mode = \"local\"\n[local]\nlisten = \"unix:/run/oc.sock\"\n", `c.toml: local.hosts: on a unix socket, list the Host names`},
	} {
		_, err := Parse("c.toml", []byte(tc.doc))
		var e *Error
		if !errors.As(err, &e) {
			t.Errorf("%q: error %v is not a *config.Error", tc.doc, err)
			continue
		}
		if !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%q:\n got %q\nwant %q", tc.doc, err, tc.want)
		}
	}
}

func TestValues(t *testing.T) {
	c, err := Parse("c.toml", []byte(`
mode = "both"
data_dir = "/var/lib/onionchat"
[lan]
listen = "0.0.0.0:9443"
names = ["chat.lan", "192.168.1.5"]
[hub]
rate = 2.5
resume_window = "5m"
join_rate = 0.5
join_burst = 3
[tor]
ephemeral = true
extra_torrc = ["TestingTorNetwork 1", "DirAuthority a 127.0.0.1:1 0000"]
`))
	if err != nil {
		t.Fatal(err)
	}
	if c.Mode != ModeBoth || c.LAN.Listen != "0.0.0.0:9443" || len(c.LAN.Names) != 2 || c.Hub.Rate != 2.5 ||
		c.Hub.ResumeWindow.Duration != 5*time.Minute || c.Hub.JoinRate != 0.5 || c.Hub.JoinBurst != 3 || !c.Tor.Ephemeral || len(c.Tor.ExtraTorrc) != 2 {
		t.Fatalf("got %+v", c)
	}
	h := c.HubConfig()
	if h.ResumeWindow != 5*time.Minute || h.JoinRate != 0.5 || h.JoinBurst != 3 || h.Rate != 2.5 || h.MaxConns != Default().Hub.MaxConns {
		t.Fatalf("HubConfig %+v", h)
	}
}

// A unix socket behind a proxy answers to the names in local.hosts.
func TestLocalHosts(t *testing.T) {
	c, err := Parse("c.toml", []byte(`mode = "local"
[local]
listen = "unix:/run/onionchat/http.sock"
hosts = ["abcdefghijklmnopqrstuvwxyz234567abcdefghijklmnopqrstuvwx.onion", "chat.example.org:8443", "[::1]:80"]
`))
	if err != nil {
		t.Fatal(err)
	}
	if len(c.Local.Hosts) != 3 {
		t.Fatalf("local.hosts = %q", c.Local.Hosts)
	}
}

func FuzzParse(f *testing.F) {
	if data, err := os.ReadFile("../../config.example.toml"); err == nil {
		f.Add(data)
	}
	for _, s := range []string{"", "mode = \"lan\"", "[hub]\nrate = 1e400", "[hub]\nx=1", "a.b.c = 1", "[[hub]]", "[lan]\nnames = [1]",
		"[hub]\nhistory_messages = 5\nhistory_ttl = \"1h\"", "[hub]\nresume_window = \"3m\"\njoin_rate = 1e400\njoin_burst = 5"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		c, err := Parse("f.toml", b)
		if err != nil {
			var e *Error
			if !errors.As(err, &e) || e.File != "f.toml" || e.Msg == "" {
				t.Fatalf("error %v (%T) does not name the file and say what is wrong", err, err)
			}
			return
		}
		if err := c.Validate(); err != nil {
			t.Fatalf("Parse accepted what Validate refuses: %v", err)
		}
	})
}
