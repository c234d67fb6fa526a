package tortest

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

const (
	testAuth   = "DirAuthority auth0 orport=5000 v3ident=0123456789ABCDEF0123456789ABCDEF01234567 127.0.0.1:5001 89ABCDEF0123456789ABCDEF0123456789ABCDEF"
	publicAuth = "DirAuthority moria1 orport=9201 v3ident=F533C81CEF0BC0267857C99B2F471ADF249FA232 128.31.0.39:9231 1A25C6358DB91342AA51720A5038B72742732498"
)

// validTorrc is a torrc the check accepts; the cases below each break it
// in one way.
func validTorrc() []string {
	return []string{
		"# a comment",
		"",
		"TestingTorNetwork 1",
		"UseDefaultFallbackDirs 0",
		testAuth,
		"DataDirectory /tmp/x",
		"SocksPort 127.0.0.1:auto",
		"ControlPort 127.0.0.1:9051",
	}
}

func without(lines []string, prefix string) []string {
	var out []string
	for _, l := range lines {
		if !strings.HasPrefix(l, prefix) {
			out = append(out, l)
		}
	}
	return out
}

func with(lines ...string) []string { return append(validTorrc(), lines...) }

func TestCheckTorrcAccepts(t *testing.T) {
	for _, lines := range [][]string{
		validTorrc(),
		with("socksport 127.0.0.1:9050"), // option names are case-insensitive
		with("SocksPort 0"),
		with("SocksPort unix:/tmp/socks"),
		with("SocksPort 127.0.0.1:9050 IsolateDestAddr"),
		with("ORPort [::1]:auto"),
		with("ORPort 127.0.0.1:9001", "Address 127.0.0.1", "ExitRelay 0", "ExitPolicy reject *:*"),
		with("HiddenServiceDir /tmp/hs", "HiddenServicePort 80"),
		with("HiddenServiceDir /tmp/hs", "HiddenServicePort 80 8080"),
		with("HiddenServiceDir /tmp/hs", "HiddenServicePort 80 127.0.0.1:8080"),
		with("HiddenServiceDir /tmp/hs", "HiddenServicePort 80 unix:/tmp/app.sock"),
		with("TestingTorNetwork 0", "TestingTorNetwork 1"), // the last one counts
	} {
		if err := checkTorrc(lines, []string{testAuth}); err != nil {
			t.Errorf("refused %q: %v", lines, err)
		}
	}
}

// refusedTorrcs are torrcs the check must refuse, by what is wrong.
var refusedTorrcs = map[string][]string{
	"no TestingTorNetwork":           without(validTorrc(), "TestingTorNetwork"),
	"TestingTorNetwork 0":            append(without(validTorrc(), "TestingTorNetwork"), "TestingTorNetwork 0"),
	"TestingTorNetwork undone later": with("TestingTorNetwork 0"),
	"no UseDefaultFallbackDirs":      without(validTorrc(), "UseDefaultFallbackDirs"),
	"UseDefaultFallbackDirs 1":       with("UseDefaultFallbackDirs 1"),
	"no DirAuthority":                without(validTorrc(), "DirAuthority"),
	"public DirAuthority":            with(publicAuth),
	"other DirAuthority":             with(strings.Replace(testAuth, "auth0", "auth9", 1)),
	"alias DirServer":                with("DirServer" + strings.TrimPrefix(testAuth, "DirAuthority")),
	"abbreviation":                   with("TestingTorNet 0"),
	"reset prefix":                   with("/TestingTorNetwork"),
	"AlternateDirAuthority":          with("Alternate" + publicAuth),
	"FallbackDir":                    with("FallbackDir 128.31.0.39:9231 orport=9201 id=1A25C6358DB91342AA51720A5038B72742732498"),
	"UseBridges":                     with("UseBridges 1", "Bridge 192.0.2.1:443"),
	"Socks5Proxy":                    with("Socks5Proxy 192.0.2.1:1080"),
	"include":                        with("%include /etc/tor/torrc.d/"),
	"RunAsDaemon":                    with("RunAsDaemon 1"),
	"ORPort all interfaces":          with("ORPort 0.0.0.0:9001"),
	"ORPort bare":                    with("ORPort 9001"),
	"ORPort auto":                    with("ORPort auto"),
	"SocksPort bare":                 with("SocksPort 9050"),
	"SocksPort all interfaces":       with("SocksPort 0.0.0.0:9050"),
	"SocksPort IPv6 any":             with("SocksPort [::]:9050"),
	"SocksPort host name":            with("SocksPort localhost:9050"),
	"ControlPort bare":               with("ControlPort 9051"),
	"DirPort LAN":                    with("DirPort 192.168.1.1:80"),
	"MetricsPort all interfaces":     with("MetricsPort 0.0.0.0:9035"),
	"Address public":                 with("Address 192.0.2.1"),
	"OutboundBindAddress":            with("OutboundBindAddress 0.0.0.0"),
	"HiddenServicePort outside":      with("HiddenServiceDir /tmp/hs", "HiddenServicePort 80 192.0.2.1:80"),
	"HiddenServicePort host name":    with("HiddenServiceDir /tmp/hs", "HiddenServicePort 80 example.com"),
	"ExitRelay 1":                    with("ExitRelay 1"),
	"ExitPolicy accept":              with("ExitPolicy reject 10.0.0.0/8:*, accept *:*"),
	"line break":                     with("Log notice stdout\nSocks5Proxy 192.0.2.1:1080"),
	"continuation":                   with(`Log notice \`, "stdout"),
}

func TestCheckTorrcRefuses(t *testing.T) {
	for name, lines := range refusedTorrcs {
		if err := checkTorrc(lines, []string{testAuth}); err == nil {
			t.Errorf("%s: accepted %q", name, lines)
		} else {
			t.Logf("%s: %v", name, err)
		}
	}
}

func TestCheckTorrcRefusesForeignNetwork(t *testing.T) {
	if err := checkTorrc(append(validTorrc(), publicAuth), []string{testAuth, publicAuth}); err == nil {
		t.Error("accepted a network whose authority is not on loopback")
	}
	if err := checkTorrc(validTorrc(), nil); err == nil {
		t.Error("accepted a torrc checked against no network")
	}
}

// TestStartRefusesBeforeStarting checks that the check gates every start:
// a refused torrc starts no process and writes no file. A fake tor that
// leaves a mark when run stands in for tor.
func TestStartRefusesBeforeStarting(t *testing.T) {
	dir := t.TempDir()
	mark := filepath.Join(dir, "ran")
	fake := filepath.Join(dir, "fake-tor")
	if err := os.WriteFile(fake, []byte("#!/bin/sh\n: > "+mark+"\n"), 0o700); err != nil {
		t.Fatal(err)
	}
	n := &Network{torPath: fake, dir: dir, auths: []string{testAuth},
		lines: []string{"TestingTorNetwork 1", "UseDefaultFallbackDirs 0", testAuth}}

	for _, extra := range [][]string{
		{"SocksPort 9050"}, // reserved: StartTor sets it
		{"ORPort 0.0.0.0:9001"},
		{"ORPort 9001"},
		{"HiddenServiceDir " + dir + "/hs", "HiddenServicePort 80 192.0.2.1:80"},
		{"TestingTorNetwork 0"}, // reserved
		{"UseDefaultFallbackDirs 1"},
		{publicAuth},
		{"Socks5Proxy 192.0.2.1:1080"},
	} {
		if tor, err := n.startExtra(extra); err == nil {
			tor.Stop()
			t.Errorf("started a tor with %q", extra)
		}
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != 1 { // fake-tor only
		t.Fatalf("refused starts left files behind: %v", entries)
	}

	// The control: the same path with an acceptable torrc does run it.
	tor, err := n.startExtra([]string{"Log notice stdout"})
	if err != nil {
		t.Fatalf("refused an acceptable torrc: %v", err)
	}
	defer tor.Stop()
	select {
	case <-tor.done:
	case <-time.After(10 * time.Second):
		t.Fatal("the fake tor did not exit")
	}
	if _, err := os.Stat(mark); err != nil {
		t.Fatalf("the fake tor did not run for an acceptable torrc: %v", err)
	}
}
