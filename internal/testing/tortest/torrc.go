package tortest

import (
	"errors"
	"fmt"
	"net/netip"
	"strconv"
	"strings"
)

// allowedOptions are the only torrc options a test tor may set, by their
// exact names (tor matches names case-insensitively, and so does the
// check). Anything else is refused: tor also accepts abbreviations
// ("TestingTorNet 0") and aliases ("DirServer"), and options such as
// Socks5Proxy, Bridge, FallbackDir or %include could lead a tor outside the
// private network, so only names known to be harmless pass. RunAsDaemon,
// PidFile and User are out too: a tor that forks away or changes user
// could not be stopped by its PID. Add a name here when a test needs it,
// after checking that it cannot make tor contact an outside address or
// leave its process.
var allowedOptions = names(
	// Network membership (checked values).
	"TestingTorNetwork", "UseDefaultFallbackDirs", "DirAuthority",
	// Listeners and addresses (checked values).
	"ORPort", "DirPort", "SocksPort", "ControlPort", "HTTPTunnelPort",
	"TransPort", "NATDPort", "DNSPort", "MetricsPort", "ExtORPort",
	"Address", "OutboundBindAddress", "OutboundBindAddressOR",
	"HiddenServicePort",
	// Exits (only non-exit values pass).
	"ExitRelay", "ExitPolicy",
	// Process, files, logs and control.
	"DataDirectory", "Log", "SafeLogging", "LogTimeGranularity",
	"AvoidDiskWrites", "Sandbox", "MaxMemInQueues",
	"ControlPortWriteToFile", "ControlSocket", "CookieAuthentication",
	"CookieAuthFile", "__OwningControllerProcess", "DisableDebuggerAttachment",
	"ShutdownWaitLength", "KeepalivePeriod", "Nickname", "ContactInfo",
	// Relays and authorities.
	"AssumeReachable", "AuthoritativeDirectory", "V3AuthoritativeDirectory",
	"DirCache", "PublishServerDescriptor", "ServerDNSDetectHijacking",
	"ServerDNSResolvConfFile", "ServerDNSAllowBrokenConfig",
	"ExitPolicyRejectPrivate",
	"V3AuthVotingInterval", "V3AuthVoteDelay", "V3AuthDistDelay",
	"V3AuthNIntervalsValid", "TestingV3AuthInitialVotingInterval",
	"TestingV3AuthInitialVoteDelay", "TestingV3AuthInitialDistDelay",
	"TestingV3AuthVotingStartOffset", "TestingDirAuthVoteGuard",
	"TestingDirAuthVoteHSDir", "TestingDirAuthVoteExit",
	"TestingMinExitFlagThreshold", "TestingMinFastFlagThreshold",
	"TestingAuthDirTimeToLearnReachability", "AuthDirMaxServersPerAddr",
	"AuthDirVoteStableGuaranteeMinUptime", "AuthDirVoteStableGuaranteeMTBF",
	"V3BandwidthsFile",
	// Clients.
	"ClientOnly", "PathsNeededToBuildCircuits", "UseEntryGuards",
	"UseMicrodescriptors", "ConfluxEnabled", "SafeSocks", "ClientUseIPv6",
	"ClientOnionAuthDir", "LearnCircuitBuildTimeout", "CircuitBuildTimeout",
	"MaxCircuitDirtiness", "NewCircuitPeriod", "VanguardsLiteEnabled",
	// Onion services.
	"HiddenServiceDir", "HiddenServiceVersion",
	"HiddenServiceAllowUnknownPorts", "HiddenServiceMaxStreams",
	"HiddenServiceMaxStreamsCloseCircuit", "HiddenServiceNumIntroductionPoints",
	"HiddenServiceEnableIntroDoSDefense", "HiddenServiceEnableIntroDoSRatePerSec",
	"HiddenServiceEnableIntroDoSBurstPerSec", "HiddenServicePoWDefensesEnabled",
	"HiddenServicePoWQueueRate", "HiddenServicePoWQueueBurst",
	"HiddenServiceDirGroupReadable", "HiddenServiceExportCircuitID",
)

func names(list ...string) map[string]string {
	m := make(map[string]string, len(list))
	for _, n := range list {
		m[strings.ToLower(n)] = n
	}
	return m
}

// listenerOptions open a listening socket; their address must be loopback
// (or a unix socket, or 0 for none). tor binds a bare port ("SocksPort
// 9050", "ORPort auto") to a default address that, for ORPort, is every
// interface, so a bare port is refused for all of them.
var listenerOptions = names("ORPort", "DirPort", "SocksPort", "ControlPort",
	"HTTPTunnelPort", "TransPort", "NATDPort", "DNSPort", "MetricsPort", "ExtORPort")

// checkTorrc is the safety gate every tor start goes through: it returns
// an error, and the tor must not be started, unless the torrc keeps the tor
// inside a private network on loopback. It requires, in the effective
// (last) setting, "TestingTorNetwork 1" and "UseDefaultFallbackDirs 0"; at
// least one DirAuthority line and every DirAuthority line equal to one of
// own (the private network's lines, which must themselves point at
// loopback); only option names from allowedOptions; listeners, Address,
// OutboundBindAddress* and HiddenServicePort targets on loopback or unix
// sockets; no exit policy that accepts anything; and one option per line
// with no continuation. It starts nothing and touches no file.
func checkTorrc(lines, own []string) error {
	ownSet := map[string]bool{}
	for _, l := range own {
		key, val := splitLine(l)
		if !strings.EqualFold(key, "DirAuthority") {
			return fmt.Errorf("torrc check: network authority line %q is not a DirAuthority line", l)
		}
		if err := checkAuthority(val); err != nil {
			return fmt.Errorf("torrc check: network authority line %q: %w", l, err)
		}
		ownSet[val] = true
	}
	if len(ownSet) == 0 {
		return errors.New("torrc check: the network has no DirAuthority lines")
	}
	last := map[string]string{}
	auths := 0
	for i, l := range lines {
		if strings.ContainsAny(l, "\r\n\x00") {
			return fmt.Errorf("torrc check: line %d %q: one option per line, no line breaks", i+1, l)
		}
		t := strings.TrimSpace(l)
		if t == "" || strings.HasPrefix(t, "#") {
			continue
		}
		if strings.HasSuffix(t, `\`) {
			return fmt.Errorf("torrc check: line %d %q: continuation lines are refused", i+1, l)
		}
		key, val := splitLine(t)
		name, ok := allowedOptions[strings.ToLower(key)]
		if !ok {
			return fmt.Errorf("torrc check: line %d: option %q is not on the list of options a test tor may use", i+1, key)
		}
		last[name] = val
		var err error
		switch {
		case name == "DirAuthority":
			auths++
			if !ownSet[val] {
				err = errors.New("not one of this private network's authorities")
			}
		case listenerOptions[strings.ToLower(name)] != "":
			err = checkListener(val)
		case name == "Address" || strings.HasPrefix(name, "OutboundBindAddress"):
			err = checkLoopbackIP(val)
		case name == "HiddenServicePort":
			err = checkHSPort(val)
		case name == "ExitRelay":
			if val != "0" {
				err = errors.New("test relays must not be exits: want ExitRelay 0")
			}
		case name == "ExitPolicy":
			err = checkExitPolicy(val)
		}
		if err != nil {
			return fmt.Errorf("torrc check: line %d %q: %w", i+1, l, err)
		}
	}
	if v, ok := last["TestingTorNetwork"]; !ok || v != "1" {
		return errors.New(`torrc check: "TestingTorNetwork 1" is required (as the last TestingTorNetwork line)`)
	}
	if v, ok := last["UseDefaultFallbackDirs"]; !ok || v != "0" {
		return errors.New(`torrc check: "UseDefaultFallbackDirs 0" is required (as the last UseDefaultFallbackDirs line)`)
	}
	if auths == 0 {
		return errors.New("torrc check: DirAuthority lines of the private network are required; without them tor uses the public authorities")
	}
	return nil
}

// splitLine splits a torrc line into its option name and its value with
// runs of blanks made single spaces.
func splitLine(l string) (key, val string) {
	f := strings.Fields(l)
	if len(f) == 0 {
		return "", ""
	}
	return f[0], strings.Join(f[1:], " ")
}

// checkAuthority checks the value of a DirAuthority line made by this
// package: "nick orport=N v3ident=HEX 127.0.0.1:PORT FINGERPRINT".
func checkAuthority(val string) error {
	f := strings.Fields(val)
	for _, w := range f[min(1, len(f)):] {
		if strings.Contains(w, "=") {
			continue
		}
		if strings.Contains(w, ":") {
			return checkLoopbackAddrPort(w)
		}
	}
	return errors.New("no address")
}

func checkListener(val string) error {
	addr, _, _ := strings.Cut(val, " ")
	switch {
	case addr == "0":
		return nil
	case strings.HasPrefix(addr, "unix:"):
		return nil
	}
	return checkLoopbackAddrPort(addr)
}

// checkLoopbackAddrPort accepts "IP:PORT" or "IP:auto" with a loopback IP.
func checkLoopbackAddrPort(s string) error {
	i := strings.LastIndex(s, ":")
	if i < 0 {
		return fmt.Errorf("%q has no address: give 127.0.0.1:PORT", s)
	}
	if err := checkLoopbackIP(strings.Trim(s[:i], "[]")); err != nil {
		return err
	}
	if p := s[i+1:]; p == "" {
		return fmt.Errorf("%q has no port", s)
	}
	return nil
}

func checkLoopbackIP(s string) error {
	ip, err := netip.ParseAddr(s)
	if err != nil || !ip.IsLoopback() {
		return fmt.Errorf("%q is not a loopback IP address", s)
	}
	return nil
}

// checkHSPort checks "VIRTPORT [TARGET]": no target, a port, a loopback
// IP:PORT or a unix socket.
func checkHSPort(val string) error {
	f := strings.Fields(val)
	if len(f) < 2 {
		return nil
	}
	target := f[1]
	if strings.HasPrefix(target, "unix:") || isPort(target) {
		return nil
	}
	return checkLoopbackAddrPort(target)
}

func isPort(s string) bool {
	n, err := strconv.Atoi(s)
	return err == nil && n > 0 && n < 65536 && strconv.Itoa(n) == s
}

func checkExitPolicy(val string) error {
	for _, p := range strings.Split(val, ",") {
		if !strings.HasPrefix(strings.ToLower(strings.TrimSpace(p)), "reject") {
			return errors.New("test relays must not be exits: only reject rules")
		}
	}
	return nil
}
