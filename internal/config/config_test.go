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

// exampleBase is config.example.toml read over nothing: every key at the
// value the example documents. (internal/app's tests hold those values to
// the parts' constants; here they are a valid base to read files over.)
func exampleBase(t testing.TB) Config {
	data, err := os.ReadFile("../../config.example.toml")
	if err != nil {
		t.Fatal(err)
	}
	c, err := Parse("config.example.toml", data, Config{})
	if err != nil {
		t.Fatalf("config.example.toml: %v", err)
	}
	c.file, c.lines = "", nil
	return c
}

func TestNoFileGivesBase(t *testing.T) {
	base := exampleBase(t)
	c, err := Parse("empty.toml", nil, base)
	if err != nil {
		t.Fatal(err)
	}
	c.file, c.lines = "", nil
	if !reflect.DeepEqual(c, base) {
		t.Fatalf("empty file: %+v, want the base %+v", c, base)
	}
	if err := base.Validate(); err != nil {
		t.Fatalf("base invalid: %v", err)
	}
}

// A file read over a base changes only what it sets, and not the base.
func TestParseLeavesBase(t *testing.T) {
	base := exampleBase(t)
	base.LAN.Names = []string{"a.lan"}
	c, err := Parse("c.toml", []byte("[lan]\nnames = [\"b.lan\", \"c.lan\"]\n[hub]\nburst = 7\n"), base)
	if err != nil {
		t.Fatal(err)
	}
	if base.LAN.Names[0] != "a.lan" || base.Hub.Burst == 7 || c.Hub.Burst != 7 || len(c.LAN.Names) != 2 || c.Hub.Rate != base.Hub.Rate {
		t.Fatalf("base %+v, parsed %+v", base, c)
	}
}

// The example file documents every key, and the format's own defaults.
func TestExampleIsComplete(t *testing.T) {
	data, err := os.ReadFile("../../config.example.toml")
	if err != nil {
		t.Fatal(err)
	}
	c := exampleBase(t)
	d := Default()
	if c.Mode != d.Mode || c.DataDir != d.DataDir || c.LAN.Listen != d.LAN.Listen || c.Local.Listen != d.Local.Listen {
		t.Errorf("config.example.toml says mode %q, data_dir %q, lan.listen %q, local.listen %q; Default() says %q, %q, %q, %q",
			c.Mode, c.DataDir, c.LAN.Listen, c.Local.Listen, d.Mode, d.DataDir, d.LAN.Listen, d.Local.Listen)
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
	base := exampleBase(t)
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
		{"[tor]\nephemeral = \"yes\"\n", `c.toml:2: tor.ephemeral: want true or false, not a TOML string`},
		{"hub = 5\n", `c.toml:1: hub: want a section [hub], not a TOML integer`},
		{"[hub]\nhandshake_timeout = \"10s\"\n", "c.toml:2: hub.handshake_timeout: has moved: set web.handshake_timeout in the [web] section"},
		{"[web]\nhandshake_timeout = \"1ms\"\n", "c.toml:2: web.handshake_timeout: want 10ms to 720h"},
		{"[web]\nhandshake = \"1s\"\n", "c.toml:2: web.handshake: unknown key"},
		{"[webb]\nhandshake_timeout = \"1s\"\n", "c.toml:1: webb: unknown section"},
		{"mode = \"lan\n", "c.toml:1: basic strings cannot have new lines"},
		{"[hub]\nrate = 5.0\nhistory_messages = 50\n", "c.toml:3: hub.history_messages: was removed: rooms keep recent frames for hub.resume_window"},
		{"[hub]\nhistory_ttl = \"1h\"\n", "c.toml:2: hub.history_ttl: was removed: rooms keep recent frames for hub.resume_window"},
		{"[hub]\njoin_rate = 0.0\n", "c.toml:2: hub.join_rate: want joins per second above 0"},
		{"[hub]\njoin_rate = \"fast\"\n", "c.toml:2: hub.join_rate: want a number, not a TOML string"},
		{"[hub]\njoin_burst = 0\n", "c.toml:2: hub.join_burst: want 1 to"},
		{"[hub]\nbyte_rate = 100\n", "c.toml:2: hub.byte_rate: want 1024 to 1073741824, not 100"},
		{"[hub]\nresume_window = 180\n", `c.toml:2: hub.resume_window: want a duration such as "30s"`},
		{"[hub]\nresume_window = \"1ms\"\n", "c.toml:2: hub.resume_window: want 10ms to 720h"},
		{"[local]\nhosts = [\"a b\"]\n", `c.toml:2: local.hosts: "a b": a host name has only`},
		{"[local]\nhosts = [\"x.onion:0\"]\n", `c.toml:2: local.hosts: "x.onion:0": bad port`},
		{"[local]\nhosts = [\"[1.2.3.4]\"]\n", `c.toml:2: local.hosts: "[1.2.3.4]" is not a bracketed IPv6`},
		{"mode = \"local\"\n[local]\nlisten = \"unix:/run/oc.sock\"\n", `c.toml: local.hosts: on a unix socket, list the Host names`},
		{"[cluster]\nfront = \"x.onion\"\n", "c.toml:2: cluster.front: needs cluster.listen"},
		{"[cluster]\nlisten = \"127.0.0.1:6222\"\ntls_cert = \"pi.crt\"\n", "c.toml:3: cluster.tls_cert: want an absolute path"},
		{"[cluster]\nlisten = \"127.0.0.1:6222\"\n", "c.toml: cluster.user: a cluster always needs credentials"},
		{"[cluster]\nlisten = \"127.0.0.1:6222\"\nuser = \"oc\"\n", "c.toml: cluster.password_file: a cluster always needs credentials"},
		{"mode = \"lan\"\n[cluster]\nlisten = \"127.0.0.1:6222\"\nfront = \"" + strings.Repeat("a", 56) + ".onion\"\n", "c.toml:4: cluster.front: an Onionbalance front is for onion mode"},
		{"[cluster]\nlisten = \"127.0.0.1:6222\"\nfront = \"abc.onion\"\n", "c.toml:3: cluster.front: want the front's v3 address"},
		{"[cluster]\nlisten = \"127.0.0.1:6222\"\ndead_after = \"1s\"\n", "c.toml:3: cluster.dead_after: want 2s to 10m"},
		{"[cluster]\nlisten = 6222\n", "c.toml:2: cluster.listen: want a string"},
	} {
		_, err := Parse("c.toml", []byte(tc.doc), base)
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
	base := exampleBase(t)
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
[web]
handshake_timeout = "4s"
`), base)
	if err != nil {
		t.Fatal(err)
	}
	if c.Mode != ModeBoth || c.LAN.Listen != "0.0.0.0:9443" || len(c.LAN.Names) != 2 || c.Hub.Rate != 2.5 ||
		c.Hub.ResumeWindow.Duration != 5*time.Minute || c.Hub.JoinRate != 0.5 || c.Hub.JoinBurst != 3 || !c.Tor.Ephemeral || len(c.Tor.ExtraTorrc) != 2 ||
		c.Web.HandshakeTimeout.Duration != 4*time.Second || c.Hub.MaxConns != base.Hub.MaxConns {
		t.Fatalf("got %+v", c)
	}
}

// Errorf locates a key of a part's own rule like the format's errors.
func TestErrorfNamesLine(t *testing.T) {
	c, err := Parse("c.toml", []byte("mode = \"onion\"\n[tor]\n\nsandbox = \"yes\"\n"), exampleBase(t))
	if err != nil {
		t.Fatal(err)
	}
	if got, want := c.Errorf("tor.sandbox", "want %q", "on").Error(), `c.toml:4: tor.sandbox: want "on"`; got != want {
		t.Errorf("got %q, want %q", got, want)
	}
	d := Default()
	if got, want := d.Errorf("tor.sandbox", "bad").Error(), "config: tor.sandbox: bad"; got != want {
		t.Errorf("built in code: got %q, want %q", got, want)
	}
}

// A unix socket behind a proxy answers to the names in local.hosts.
func TestLocalHosts(t *testing.T) {
	c, err := Parse("c.toml", []byte(`mode = "local"
[local]
listen = "unix:/run/onionchat/http.sock"
hosts = ["abcdefghijklmnopqrstuvwxyz234567abcdefghijklmnopqrstuvwx.onion", "chat.example.org:8443", "[::1]:80"]
`), exampleBase(t))
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
		"[hub]\nhistory_messages = 5\nhistory_ttl = \"1h\"", "[hub]\nhandshake_timeout = \"1s\"\n[web]\nhandshake_timeout = \"2s\"", "[hub]\nresume_window = \"3m\"\njoin_rate = 1e400\njoin_burst = 5"} {
		f.Add([]byte(s))
	}
	base := exampleBase(f)
	f.Fuzz(func(t *testing.T, b []byte) {
		c, err := Parse("f.toml", b, base)
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
