package onion

import (
	"cmp"
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"unicode"

	"github.com/onionchat/onionchat/internal/setting"
)

// injection is the reproduction from issue 13: a data directory whose
// name carries torrc lines of its own.
const injection = "/var/lib/oc\nSocksPort 0.0.0.0:9050\n#"

func TestCheckTorrcValue(t *testing.T) {
	for _, ok := range []string{"/var/lib/onionchat", "/home/Jo Doe/.local/share/onionchat", "64 MB", "/run/ünïcode"} {
		if err := CheckTorrcValue(ok); err != nil {
			t.Errorf("%q refused: %v", ok, err)
		}
	}
	for bad, why := range map[string]string{
		injection:          "line break",
		"/x\rSocksPort 1":  "line break",
		"/x#y":             "'#'",
		`"/x"`:             `'"'`,
		`/x\`:              `'\'`,
		"/x ":              "white space",
		" /x":              "white space",
		"/x\x00y":          "control character",
		"/x\ty":            "control character",
		"/x\x7fy":          "control character",
		"":                 "empty",
		"/x\u2028y\nDir 1": "line break",
	} {
		err := CheckTorrcValue(bad)
		if err == nil || !strings.Contains(err.Error(), why) {
			t.Errorf("%q: got %v, want an error about %s", bad, err, why)
		}
	}
}

// TestStartRefusesInjection: a value that would add torrc lines stops
// Start before anything runs (no tor is needed to see it), naming what it
// came from, and no torrc is written.
func TestStartRefusesInjection(t *testing.T) {
	rt := t.TempDir()
	for name, c := range map[string]Config{
		"data directory":                         {DataDir: injection, RuntimeDir: rt},
		"runtime directory":                      {DataDir: t.TempDir(), RuntimeDir: rt + "/x\nSocksPort 9050"},
		"runtime directory path has white space": {DataDir: t.TempDir(), RuntimeDir: rt + "/a b"},
		"MaxMemInQueues":                         {DataDir: t.TempDir(), RuntimeDir: rt, MaxMemInQueues: "64 MB\nSocksPort 9050"},
		"extra torrc":                            {DataDir: t.TempDir(), RuntimeDir: rt, ExtraTorrc: []string{"TestingTorNetwork 1", "Log notice stdout\nSocksPort 9050"}},
		"private test networks":                  {DataDir: t.TempDir(), RuntimeDir: rt, ExtraTorrc: []string{"SocksPort 9050"}},
	} {
		c.TorPath = filepath.Join(t.TempDir(), "no-tor-here") // never reached
		_, err := Start(context.Background(), c)
		if err == nil || !strings.Contains(err.Error(), strings.Fields(name)[0]) {
			t.Errorf("%s: got %v", name, err)
		}
		if _, err := os.Stat(filepath.Join(rt, "torrc")); err == nil {
			t.Fatalf("%s: a torrc was written", name)
		}
	}
}

// renderFuzzed renders the torrc as Start would for a data directory,
// a runtime directory and the other Config values a configuration sets.
func renderFuzzed(dataDir, runtime, maxMem string, extra []string, maxStreams int, flags uint8) (torrc, string, error) {
	rc := torrc{
		dataDir:    filepath.Join(dataDir, TorDir),
		control:    filepath.Join(runtime, ControlSocket),
		cookieFile: filepath.Join(runtime, "control_auth_cookie"),
		serviceDir: filepath.Join(dataDir, ServiceDir),
		socket:     filepath.Join(runtime, "hub.sock"),
		sandbox:    flags&1 != 0,
		pow:        flags&2 != 0,
		conf: Config{
			MaxMemInQueues: maxMem, ExtraTorrc: extra, MaxStreams: maxStreams,
			SafeLogging: new(flags&4 == 0), AvoidDiskWrites: new(flags&8 == 0), IntroDoSDefense: new(flags&16 == 0),
		},
	}
	if flags&64 != 0 {
		rc.conf.OnionbalanceFront = Address(make([]byte, 32))
	}
	text, err := rc.render()
	return rc, text, err
}

// FuzzTorrc: whatever the directories and values, the rendered torrc holds
// exactly onionchat's options, each once and in order, each with the value
// it was given, then the extra lines one for one (which pass only with
// "TestingTorNetwork 1"), and nothing that tor would read as another line,
// a continuation or a comment. Anything else is refused.
func FuzzTorrc(f *testing.F) {
	f.Add("/var/lib/onionchat", "/run/onionchat", "64 MB", "", 32, uint8(3))
	f.Add("/var/lib/onionchat", "/run/onionchat", "64 MB", "", 32, uint8(67))
	f.Add(injection, "/run/onionchat", "", "", 0, uint8(0))
	f.Add("/var/lib/oc", "/run/oc\nSocksPort 9050", "64 MB", "", 1, uint8(31))
	f.Add("/var/lib/oc", "/run/oc", "64 MB\r\nSocksPort 9050", "", 7, uint8(1))
	f.Add("/var/lib/oc", "/run/oc", "", "TestingTorNetwork 1\nDirAuthority a 127.0.0.1:1 X", 0, uint8(0))
	f.Add("/var/lib/oc", "/run/oc", "", "TestingTorNetwork 1\nSocksPort 1\\", 0, uint8(0))
	f.Add("/a b/#c", "/run/\\oc", "1 GB", "SocksPort 9050", -1, uint8(255))
	f.Fuzz(func(t *testing.T, dataDir, runtime, maxMem, extraText string, maxStreams int, flags uint8) {
		var extra []string
		if extraText != "" {
			extra = strings.Split(extraText, "\n") // one entry per line, as a config list gives them
			if len(extra) > 1 && flags&32 != 0 {
				extra = []string{extraText} // or one entry holding a line break
			}
		}
		rc, text, err := renderFuzzed(dataDir, runtime, maxMem, extra, maxStreams, flags)
		if err != nil {
			if !strings.HasPrefix(err.Error(), "onion: ") {
				t.Fatalf("error without context: %v", err)
			}
			return
		}
		lines := strings.Split(strings.TrimSuffix(text, "\n"), "\n")
		if !strings.HasSuffix(text, "\n") || !strings.HasPrefix(lines[0], "# ") {
			t.Fatalf("torrc without its header or final line break:\n%q", text)
		}
		lines = lines[1:]
		keywords := torrcKeywords
		if rc.conf.OnionbalanceFront != "" {
			keywords = append(slices.Clone(keywords), "HiddenServiceOnionbalanceInstance")
		}
		if len(lines) != len(keywords)+len(extra) {
			t.Fatalf("%d lines, want %d options and %d extra lines:\n%s", len(lines), len(keywords), len(extra), text)
		}
		values := map[string]string{
			"DataDirectory": rc.dataDir, "ControlPort": "unix:" + rc.control, "CookieAuthFile": rc.cookieFile, "HiddenServiceDir": rc.serviceDir,
			"HiddenServicePort": "80 unix:" + rc.socket, "MaxMemInQueues": cmp.Or(maxMem, DefaultMaxMemInQueues),
		}
		for i, kw := range keywords {
			l := lines[i]
			if strings.ContainsFunc(l, unicode.IsControl) || strings.ContainsAny(l, "#\"\\") || strings.TrimSpace(l) != l {
				t.Fatalf("line %q of option %s has what tor reads as structure", l, kw)
			}
			key, val, _ := strings.Cut(l, " ")
			if key != kw {
				t.Fatalf("line %d is %q, want option %s:\n%s", i+2, l, kw, text)
			}
			if want, ok := values[kw]; ok && val != want {
				t.Fatalf("%s = %q, want %q", kw, val, want)
			}
		}
		got := lines[len(keywords):]
		if !slices.Equal(got, extra) {
			t.Fatalf("extra lines %q, want %q", got, extra)
		}
		testing := false
		for _, l := range got {
			if strings.ContainsFunc(l, unicode.IsControl) || strings.HasSuffix(l, "\\") {
				t.Fatalf("extra line %q runs into another", l)
			}
			testing = testing || strings.Join(strings.Fields(l), " ") == "TestingTorNetwork 1"
		}
		if len(got) > 0 && !testing {
			t.Fatalf("extra lines without TestingTorNetwork 1 were written: %q", got)
		}
	})
}

// Validate takes a Feature's three words, and only those (the zero
// value is FeatureAuto in code, not a word an owner writes).
func TestFeatureWords(t *testing.T) {
	for _, f := range []Feature{FeatureAuto, FeatureOn, FeatureOff} {
		c := Config{Sandbox: f, PoW: f}.WithDefaults()
		if err := c.Validate(); err != nil {
			t.Errorf("%q: %v", f, err)
		}
	}
	for _, s := range []Feature{"", "yes", "On", " auto"} {
		c := Config{}.WithDefaults()
		c.PoW = s
		var e *setting.Error
		if err := c.Validate(); !errors.As(err, &e) || e.Key != "pow_defense" {
			t.Errorf("%q: %v", s, err)
		}
	}
}

// The zero Config is the defaults: it renders the torrc WithDefaults
// renders, and the defaults are settings an owner may give.
func TestZeroConfigIsDefaults(t *testing.T) {
	d := Config{}.WithDefaults()
	if err := d.Validate(); err != nil {
		t.Fatalf("the defaults: %v", err)
	}
	zero := torrc{dataDir: "/d/tor", control: "/r/control.sock", cookieFile: "/r/c", serviceDir: "/d/onion", socket: "/r/hub.sock", owner: 1}
	def := zero
	def.conf = d
	a, err := zero.render()
	b, err2 := def.render()
	if err != nil || err2 != nil || a != b {
		t.Errorf("zero Config:\n%s\nWithDefaults:\n%s\n%v %v", a, b, err, err2)
	}
	for _, want := range []string{"\nSafeLogging 1\n", "\nAvoidDiskWrites 1\n", "\nHiddenServiceEnableIntroDoSDefense 1\n",
		"\nMaxMemInQueues " + DefaultMaxMemInQueues + "\n", "\nHiddenServiceMaxStreams 32\n"} {
		if !strings.Contains(a, want) {
			t.Errorf("zero Config's torrc lacks %q", want)
		}
	}
}
