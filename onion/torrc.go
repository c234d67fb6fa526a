package onion

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"
	"unicode"

	"github.com/onionchat/onionchat/internal/setting"
)

// Feature is the setting of an optional tor defence: the word the
// configuration file gives it.
type Feature string

// Feature values. The zero value means FeatureAuto.
const (
	FeatureAuto Feature = "auto" // on where the installed tor supports it
	FeatureOn   Feature = "on"   // on, or refuse to start
	FeatureOff  Feature = "off"  // off
)

// Defaults of Config's zero values.
const (
	DefaultMaxStreams     = 32
	DefaultMaxMemInQueues = "64 MB"
	DefaultPublishTimeout = 3 * time.Minute
)

// Support says which optional defences the installed tor has.
type Support struct {
	Sandbox bool // seccomp syscall sandbox (Sandbox 1)
	PoW     bool // proof-of-work defence for onion services
}

// ErrNoTor is wrapped by errors about a missing tor binary.
var ErrNoTor = errors.New("tor not found")

// InstallHint tells the owner how to get tor.
const InstallHint = "install it with: sudo apt-get install tor && sudo systemctl disable --now tor " +
	"(onionchat runs its own tor), or set tor.path in the config"

// FindTor returns the tor binary to use: path if set, else "tor" on $PATH.
func FindTor(path string) (string, error) {
	if path == "" {
		path = "tor"
	}
	p, err := exec.LookPath(path)
	if err != nil {
		return "", fmt.Errorf("onion: %w (%s): %s", ErrNoTor, path, InstallHint)
	}
	return p, nil
}

// Detect asks the tor binary which defences it supports, without starting
// it on any network: "--list-modules" for proof of work, and a
// "--verify-config" of a torrc with "Sandbox 1" and "DisableNetwork 1".
func Detect(ctx context.Context, torPath string) (Support, error) {
	var s Support
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, torPath, "--list-modules").Output()
	if err != nil {
		return s, fmt.Errorf("onion: %s --list-modules: %w", torPath, err)
	}
	for _, l := range strings.Split(string(out), "\n") {
		if strings.TrimSpace(l) == "pow: yes" {
			s.PoW = true
		}
	}
	dir, err := os.MkdirTemp("", "onionchat-verify-")
	if err != nil {
		return s, fmt.Errorf("onion: %w", err)
	}
	defer os.RemoveAll(dir)
	torrc := filepath.Join(dir, "torrc")
	empty := filepath.Join(dir, "defaults")
	body := "DisableNetwork 1\nSocksPort 0\nDataDirectory " + filepath.Join(dir, "data") + "\nSandbox 1\n"
	if err := os.WriteFile(torrc, []byte(body), 0o600); err != nil {
		return s, fmt.Errorf("onion: %w", err)
	}
	os.WriteFile(empty, nil, 0o600)
	s.Sandbox = exec.CommandContext(ctx, torPath, "--verify-config", "-f", torrc, "--defaults-torrc", empty).Run() == nil
	return s, nil
}

// CheckTorrcValue returns why v cannot be written as the value of a torrc
// line, or nil. tor reads a line up to its end, drops white space around
// the value, starts a comment at '#', continues a line ending in '\\' on
// the next, and reads a value starting with '"' as a C string; so a value
// is safe as it stands, unquoted, when it is not empty and has no control
// character (line breaks included), no '#', '"' or '\\', and no white space
// at either end. onionchat writes every value this way or not at all:
// nothing from the configuration or the environment can add a torrc line.
// The error says what is wrong without repeating the value.
func CheckTorrcValue(v string) error {
	switch {
	case v == "":
		return errors.New("is empty")
	case strings.ContainsAny(v, "\n\r"):
		return errors.New("has a line break")
	case strings.ContainsRune(v, '#'):
		return errors.New("has '#', which starts a torrc comment")
	case strings.ContainsAny(v, "\"\\"):
		return errors.New("has '\"' or '\\', which torrc reads as quoting or a continued line")
	case strings.TrimSpace(v) != v:
		return errors.New("begins or ends with white space, which torrc drops")
	}
	for _, r := range v { // C0 and C1 controls and DEL: line structure to tor's parser, or nothing a path holds
		if unicode.IsControl(r) {
			return fmt.Errorf("has the control character %U", r)
		}
	}
	return nil
}

// CheckSocketPath is CheckTorrcValue for the unix socket of
// HiddenServicePort, whose value tor splits at white space, and so for
// Config.RuntimeDir, which holds it.
func CheckSocketPath(p string) error {
	if err := CheckTorrcValue(p); err != nil {
		return err
	}
	if strings.ContainsAny(p, " \t") {
		return errors.New("has white space, which tor reads as the end of a HiddenServicePort target")
	}
	return nil
}

// CheckTorrcDir returns why p cannot be a directory of the configuration
// that onionchat writes into tor's torrc, or nil: it must be absolute,
// and a torrc value (CheckTorrcValue) or, with socket, the directory of
// HiddenServicePort's unix socket (CheckSocketPath). The error names p,
// not the setting: "want an absolute path, not …", or "the path … <why>;
// it is written into tor's configuration".
func CheckTorrcDir(p string, socket bool) error {
	if !filepath.IsAbs(p) {
		return fmt.Errorf("want an absolute path, not %q", p)
	}
	check := CheckTorrcValue
	if socket {
		check = CheckSocketPath
	}
	if err := check(p); err != nil {
		return fmt.Errorf("the path %q %w; it is written into tor's configuration", p, err)
	}
	return nil
}

// checkExtraTorrc checks Config.ExtraTorrc: one torrc line per entry, and
// only on a private test network ("TestingTorNetwork 1" among them). Its
// error is a *setting.Error about extra_torrc.
func checkExtraTorrc(lines []string) error {
	if len(lines) == 0 {
		return nil
	}
	testing := false
	for _, l := range lines {
		if strings.ContainsFunc(l, unicode.IsControl) {
			return setting.Errorf("extra_torrc", "one torrc line per entry: %q has a line break or control character", l)
		}
		if strings.HasSuffix(l, "\\") {
			return setting.Errorf("extra_torrc", "%q ends in '\\', which runs it into the next line", l)
		}
		if strings.Join(strings.Fields(l), " ") == "TestingTorNetwork 1" {
			testing = true
		}
	}
	if !testing {
		return setting.Errorf("extra_torrc", `is for private test networks only and needs the line "TestingTorNetwork 1"`)
	}
	return nil
}

// torrc renders the configuration onionchat gives its tor. Every line is
// here so that a reader can audit it in one place.
type torrc struct {
	dataDir    string // tor's DataDirectory (its state and directory cache)
	control    string // the control port's unix socket, in the runtime directory
	cookieFile string // CookieAuthFile: the control port's cookie, in the runtime directory
	owner      int    // __OwningControllerProcess: the PID tor exits without; 0 means this process
	serviceDir string // HiddenServiceDir
	socket     string // unix socket visitors are forwarded to
	sandbox    bool
	pow        bool
	conf       Config
}

// torrcKeywords are the options render writes, once each, before the
// extra lines.
var torrcKeywords = []string{
	"DataDirectory", "ControlPort", "CookieAuthentication", "CookieAuthFile", "__OwningControllerProcess", "ClientOnly", "SocksPort", "Log", "SafeLogging", "AvoidDiskWrites",
	"Sandbox", "MaxMemInQueues", "HiddenServiceDir", "HiddenServicePort", "HiddenServiceExportCircuitID",
	"HiddenServiceEnableIntroDoSDefense", "HiddenServicePoWDefensesEnabled", "HiddenServiceMaxStreams",
	"HiddenServiceMaxStreamsCloseCircuit",
}

// render returns the torrc, or an error naming the option whose value
// cannot be written safely (see CheckTorrcValue).
func (t torrc) render() (string, error) {
	c := t.conf.WithDefaults()
	for _, v := range []struct{ key, val string }{
		{"DataDirectory", t.dataDir},
		{"CookieAuthFile", t.cookieFile},
		{"HiddenServiceDir", t.serviceDir},
		{"MaxMemInQueues", c.MaxMemInQueues},
	} {
		if err := CheckTorrcValue(v.val); err != nil {
			return "", fmt.Errorf("onion: torrc %s: the value %w", v.key, err)
		}
	}
	if err := CheckSocketPath(t.socket); err != nil {
		return "", fmt.Errorf("onion: torrc HiddenServicePort: the socket path %w", err)
	}
	if err := CheckSocketPath(t.control); err != nil {
		return "", fmt.Errorf("onion: torrc ControlPort: the socket path %w", err)
	}
	if err := checkExtraTorrc(c.ExtraTorrc); err != nil {
		return "", fmt.Errorf("onion: torrc %w", err)
	}
	var b strings.Builder
	line := func(k string, v ...any) {
		b.WriteString(k)
		for _, x := range v {
			fmt.Fprintf(&b, " %v", x)
		}
		b.WriteByte('\n')
	}
	b.WriteString("# Written by onionchat at every start; edits are lost.\n")
	line("DataDirectory", t.dataDir)
	// The control port is a unix socket in the private runtime directory,
	// never a TCP port, and needs the cookie too. onionchat takes
	// ownership of tor over it (TAKEOWNERSHIP): tor exits as soon as that
	// connection closes, however onionchat ends. Until then, and as a
	// second line, tor exits within 15 s of onionchat's PID vanishing.
	line("ControlPort", "unix:"+t.control)
	line("CookieAuthentication", 1)
	line("CookieAuthFile", t.cookieFile)
	line("__OwningControllerProcess", cmp.Or(t.owner, os.Getpid()))
	line("ClientOnly", 1)     // never a relay
	line("SocksPort", 0)      // nothing here uses tor as a client proxy
	line("Log notice stdout") // onionchat reads it; no log files
	line("SafeLogging", b01(*c.SafeLogging))
	line("AvoidDiskWrites", b01(*c.AvoidDiskWrites))
	line("Sandbox", b01(t.sandbox))
	line("MaxMemInQueues", c.MaxMemInQueues)
	line("HiddenServiceDir", t.serviceDir)
	line("HiddenServicePort", 80, "unix:"+t.socket)
	line("HiddenServiceExportCircuitID", "haproxy")
	line("HiddenServiceEnableIntroDoSDefense", b01(*c.IntroDoSDefense))
	line("HiddenServicePoWDefensesEnabled", b01(t.pow))
	line("HiddenServiceMaxStreams", c.MaxStreams)
	line("HiddenServiceMaxStreamsCloseCircuit", 1)
	if c.OnionbalanceFront != "" {
		if err := checkFront(c); err != nil {
			return "", err
		}
		line("HiddenServiceOnionbalanceInstance", 1)
	}
	for _, l := range c.ExtraTorrc {
		line(l)
	}
	return b.String(), nil
}

func b01(v bool) int {
	if v {
		return 1
	}
	return 0
}
