package config

import (
	"errors"
	"os"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/onionchat/onionchat/internal/setting"
)

// readExample reads config.example.toml over nothing: every key at the
// value the example documents.
func readExample(t testing.TB) (Config, map[string]int) {
	data, err := os.ReadFile("../../config.example.toml")
	if err != nil {
		t.Fatal(err)
	}
	c, err := parse("config.example.toml", data, Config{})
	if err != nil {
		t.Fatalf("config.example.toml: %v", err)
	}
	return c, c.lines
}

// leafKeys calls f with each dotted key of the file below the struct v
// (not the sections) and its value.
func leafKeys(prefix string, v reflect.Value, f func(key string, v reflect.Value)) {
	for _, field := range keys(v.Type()) {
		fv := v.FieldByIndex(field.Index)
		if fv.Kind() == reflect.Struct {
			leafKeys(prefix+keyName(field)+".", fv, f)
			continue
		}
		f(prefix+keyName(field), fv)
	}
}

// config.example.toml documents every key, each at its default: read
// over nothing, it is Default, key by key, so the numbers a reader sees
// there are the parts' own (their WithDefaults) and the modes'.
func TestExampleIsDefaults(t *testing.T) {
	got, lines := readExample(t)
	want := reflect.ValueOf(Default())
	leafKeys("", reflect.ValueOf(got), func(key string, v reflect.Value) {
		if _, ok := lines[key]; !ok {
			t.Errorf("config.example.toml does not document %s", key)
			return
		}
		w, _ := valueOf(want, key)
		if a, b := v.Interface(), w.Interface(); !reflect.DeepEqual(a, b) && !(v.Kind() == reflect.Slice && v.Len() == 0 && w.Len() == 0) {
			t.Errorf("%s: config.example.toml says %v, the default is %v", key, show(v), show(w))
		}
	})
}

// valueOf returns the value of a dotted key in v, a Config.
func valueOf(v reflect.Value, key string) (reflect.Value, bool) {
	for _, part := range strings.Split(key, ".") {
		i := slices.IndexFunc(keys(v.Type()), func(f reflect.StructField) bool { return keyName(f) == part })
		if i < 0 {
			return reflect.Value{}, false
		}
		v = v.FieldByIndex(keys(v.Type())[i].Index)
	}
	return v, true
}

func show(v reflect.Value) any {
	if v.Kind() == reflect.Pointer && !v.IsNil() {
		return v.Elem().Interface()
	}
	return v.Interface()
}

func TestNoFileGivesDefault(t *testing.T) {
	c, err := Parse("empty.toml", nil)
	if err != nil {
		t.Fatal(err)
	}
	c.file, c.lines = "", nil
	if !reflect.DeepEqual(c, Default()) {
		t.Fatalf("empty file: %+v, want Default %+v", c, Default())
	}
	if c, err := Load(""); err != nil || !reflect.DeepEqual(c, Default()) {
		t.Fatalf("no file: %+v, %v", c, err)
	}
}

// A file read over a base changes only what it sets, and not the base:
// no list or pointer is shared.
func TestParseLeavesBase(t *testing.T) {
	base := Default()
	base.LAN.Names = []string{"a.lan"}
	c, err := parse("c.toml", []byte("[lan]\nnames = [\"b.lan\", \"c.lan\"]\n[hub]\nburst = 7\n[tor]\nsafe_logging = false\n"), base)
	if err != nil {
		t.Fatal(err)
	}
	if base.LAN.Names[0] != "a.lan" || base.Hub.Burst == 7 || c.Hub.Burst != 7 || len(c.LAN.Names) != 2 || c.Hub.Rate != base.Hub.Rate {
		t.Fatalf("base %+v, parsed %+v", base, c)
	}
	if !*base.Tor.SafeLogging || *c.Tor.SafeLogging || !*c.Tor.AvoidDiskWrites || c.Tor.AvoidDiskWrites == base.Tor.AvoidDiskWrites {
		t.Fatalf("tor: base %+v, parsed %+v", base.Tor, c.Tor)
	}
}

// Every exported field of a section is a key or says it is not.
func TestSectionsTagEveryField(t *testing.T) {
	defer func() {
		if r := recover(); r != nil {
			t.Fatal(r)
		}
	}()
	decodable(reflect.TypeFor[Config]())
	type untagged struct{ Limit int }
	defer func() {
		if recover() == nil {
			t.Error("a field without a toml tag was taken as a key")
		}
	}()
	decodable(reflect.TypeFor[untagged]())
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
		{"[hub]\nping_interval = \"2m\"\n", "c.toml: hub.idle_timeout: must be longer than ping_interval (2m0s)"},
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
		{"[cluster]\nfront = \"x.onion\"\n", "c.toml:2: cluster.front: needs listen"},
		{"[cluster]\n\npeers = [\"127.0.0.1:6223\"]\n", "c.toml:3: cluster.peers: needs listen"},
		{"[tor]\nsandbox = \"yes\"\n", `c.toml:2: tor.sandbox: want "auto", "on" or "off", not "yes"`},
		{"mode = \"lan\"\n[tor]\n\npow_defense = \"\"\n", `c.toml:4: tor.pow_defense: want "auto", "on" or "off", not ""`},
		{"[tor]\nsafe_logging = \"no\"\n", `c.toml:2: tor.safe_logging: want true or false, not a TOML string`},
		{"[tor]\nmax_streams = 0\n", `c.toml:2: tor.max_streams: want 1 to 65535, not 0`},
		{"[tor]\nmax_mem_in_queues = \"\"\n", `c.toml:2: tor.max_mem_in_queues: want a size such as "64 MB", not ""`},
		{"[tor]\npublish_timeout = \"2h\"\n", `c.toml:2: tor.publish_timeout: want 1s to 1h, not 2h0m0s`},
		{"[hub]\nserver_id = \"x\"\n", "c.toml:2: hub.server_id: unknown key"},
		{"[cluster]\nheartbeat = \"1s\"\n", "c.toml:2: cluster.heartbeat: unknown key"},
		{"[tor]\ndata_dir = \"/srv\"\n", "c.toml:2: tor.data_dir: unknown key"},
		{"[cluster]\nlisten = \"127.0.0.1:6222\"\ntls_cert = \"pi.crt\"\n", "c.toml:3: cluster.tls_cert: want an absolute path"},
		{"[cluster]\nlisten = \"127.0.0.1:6222\"\n", "c.toml: cluster.user: a cluster always needs credentials"},
		{"[cluster]\nlisten = \"127.0.0.1:6222\"\nuser = \"oc\"\n", "c.toml: cluster.password_file: a cluster always needs credentials"},
		{"mode = \"lan\"\n[cluster]\nlisten = \"127.0.0.1:6222\"\nfront = \"" + strings.Repeat("a", 56) + ".onion\"\n", "c.toml:4: cluster.front: an Onionbalance front is for onion mode"},
		{"[cluster]\nlisten = \"127.0.0.1:6222\"\nfront = \"abc.onion\"\n", "c.toml:3: cluster.front: want the front's v3 address"},
		{"[cluster]\nlisten = \"127.0.0.1:6222\"\ndead_after = \"1s\"\n", "c.toml:3: cluster.dead_after: want 2s to 10m"},
		{"[cluster]\nlisten = 6222\n", "c.toml:2: cluster.listen: want a string"},
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
	base := Default()
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
`))
	if err != nil {
		t.Fatal(err)
	}
	if c.Mode != ModeBoth || c.LAN.Listen != "0.0.0.0:9443" || len(c.LAN.Names) != 2 || c.Hub.Rate != 2.5 ||
		c.Hub.ResumeWindow != 5*time.Minute || c.Hub.JoinRate != 0.5 || c.Hub.JoinBurst != 3 || !c.Tor.Ephemeral || len(c.Tor.ExtraTorrc) != 2 ||
		c.Web.HandshakeTimeout != 4*time.Second || c.Hub.MaxConns != base.Hub.MaxConns {
		t.Fatalf("got %+v", c)
	}
}

// Locate names the file and line of a key a part refuses after the file
// is read, like the format's own errors.
func TestLocateNamesLine(t *testing.T) {
	c, err := Parse("c.toml", []byte("mode = \"onion\"\n[cluster]\n\npassword_file = \"/etc/pw\"\n"))
	if err != nil {
		t.Fatal(err)
	}
	refused := setting.Errorf("password_file", "can be read by others")
	if got, want := c.Locate("cluster", refused).Error(), `c.toml:4: cluster.password_file: can be read by others`; got != want {
		t.Errorf("got %q, want %q", got, want)
	}
	d := Default()
	if got, want := d.Locate("cluster", refused).Error(), "config: cluster.password_file: can be read by others"; got != want {
		t.Errorf("built in code: got %q, want %q", got, want)
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
		"[hub]\nhistory_messages = 5\nhistory_ttl = \"1h\"", "[hub]\nhandshake_timeout = \"1s\"\n[web]\nhandshake_timeout = \"2s\"", "[hub]\nresume_window = \"3m\"\njoin_rate = 1e400\njoin_burst = 5",
		"[tor]\nsafe_logging = false\nsandbox = \"on\"\nmax_streams = 0", "[cluster]\nlisten = \"127.0.0.1:6222\"\nuser = \"u\"\npassword_file = \"/pw\"\ndead_after = \"3s\""} {
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
