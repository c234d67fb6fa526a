// Package tortest builds private Tor networks on 127.0.0.1 for tests: three
// directory authorities (keys from tor-gencert), three relays and a client
// tor with a SOCKS port, all started from the system's tor, plus extra tors
// a test asks for (an onion service, a second client) and MainInNetns,
// which runs a test binary in a network namespace of its own.
//
// It owns those tor processes: it starts each one, bounds every wait on
// it, and stops it by its own PID when the test ends. It must never start a
// tor that could reach the public Tor network: every start goes through one
// check (checkTorrc) that refuses a torrc without "TestingTorNetwork 1",
// "UseDefaultFallbackDirs 0" and this network's own DirAuthority lines, with
// a listener or target that is not loopback, or with any option not known
// to be harmless. It is test support: no onionchat code depends on it.
package tortest

import (
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/onionchat/onionchat/internal/testing/need"
)

// BootstrapTimeout bounds Start's wait for the network: from launching the
// tors until the client has bootstrapped on a consensus listing every relay
// as an HSDir. The network is usually ready in 10-20 s; the bound is
// generous for loaded CI machines.
var BootstrapTimeout = 90 * time.Second

// RequestTimeout bounds each request of an HTTPClient.
var RequestTimeout = 60 * time.Second

const (
	numAuthorities = 3
	numRelays      = 3
	logTailLines   = 30
)

// Voting schedule of the authorities. A consensus every 10 s, the
// shortest interval tor accepts in a testing network, with 2 s each for
// votes and signatures. The first vote is placed (with
// TestingV3AuthVotingStartOffset, see votingOffset) a few seconds after
// launch, once the relays' descriptors are in: at tor's own schedule it
// often comes first and yields a consensus without them, and the next one
// is 10 s later.
func authorityTiming(interval int) []string {
	return []string{
		"TestingV3AuthInitialVotingInterval " + strconv.Itoa(interval),
		"TestingV3AuthInitialVoteDelay 2",
		"TestingV3AuthInitialDistDelay 2",
		"V3AuthVotingInterval " + strconv.Itoa(interval),
		"V3AuthVoteDelay 2",
		"V3AuthDistDelay 2",
		"V3AuthNIntervalsValid 2",
	}
}

// DefaultVotingInterval is the authorities' voting interval in seconds
// unless Options say otherwise: the shortest tor accepts on a testing
// network.
const DefaultVotingInterval = 10

// Options change how Start builds a network; the zero value is the
// default network.
type Options struct {
	// VotingInterval is the authorities' voting interval in seconds
	// (V3AuthVotingInterval and TestingV3AuthInitialVotingInterval); 0
	// means DefaultVotingInterval. Onionbalance's --is-testnet assumes
	// chutney's 20 s: with 10 its descriptor uploads fail NOT_FOUND.
	VotingInterval int
}

// votingOffset returns the TestingV3AuthVotingStartOffset that makes the
// first consensus valid from the first whole second at least 8 s after
// launch, so that its vote, 4 s before, starts 4-5 s after launch, when
// the relays (up in a second or two) have uploaded their descriptors.
// Intervals of 10 s start at multiples of 10 s since midnight UTC plus the
// offset.
func votingOffset(launch time.Time, interval int) int {
	return int((launch.Unix() + 9) % int64(interval))
}

// Network is a running private Tor network. Its tors are stopped when the
// test that started it ends. Methods are safe for concurrent use.
type Network struct {
	torPath string
	dir     string
	started time.Time
	voting  int      // the authorities' voting interval, seconds
	auths   []string // DirAuthority lines
	lines   []string // TorrcLines

	authorities []*Tor
	relays      []*Tor
	client      *Tor

	mu     sync.Mutex
	all    []*Tor // every tor started, extra ones included
	extra  int
	phases []string // how long each step of start took, for the log
}

func (n *Network) phase(what string) {
	n.phases = append(n.phases, fmt.Sprintf("%s %.1fs", what, time.Since(n.started).Seconds()))
}

// Start builds and starts a private network in a temporary directory and
// returns once its client tor has bootstrapped on a consensus that lists
// every authority and relay as a running HSDir, so that onion services
// started afterwards can publish and be reached. It skips the test (or fails
// it, with ONIONCHAT_REQUIRE_TOOLS=1) if tor or tor-gencert is missing, and
// fails it, with the tail of the tors' logs, if the network is not up
// within BootstrapTimeout. Every tor is stopped by its own PID when t ends.
//
// Each call builds a new network (some 250 MB of memory for its seven
// tors); tests that can share one should.
func Start(t testing.TB) *Network {
	t.Helper()
	return StartWith(t, Options{})
}

// StartWith is Start with Options.
func StartWith(t testing.TB, o Options) *Network {
	t.Helper()
	if o.VotingInterval == 0 {
		o.VotingInterval = DefaultVotingInterval
	}
	torPath := need.Tool(t, "tor")
	gencert := need.Tool(t, "tor-gencert")
	n := &Network{torPath: torPath, dir: t.TempDir(), started: time.Now(), voting: o.VotingInterval}
	t.Cleanup(func() {
		if t.Failed() {
			n.logTails(t)
		}
		for _, err := range n.stopAll() {
			reportStop(t, err)
		}
	})
	if err := n.start(gencert); err != nil {
		t.Fatalf("tortest: start network: %v", err)
	}
	t.Logf("tortest: private Tor network up in %v (%s; client SOCKS %s)", time.Since(n.started).Round(time.Millisecond), strings.Join(n.phases, ", "), n.SOCKSAddr())
	return n
}

func (n *Network) start(gencert string) error {
	ports, err := FreePorts(2 * numAuthorities)
	if err != nil {
		return fmt.Errorf("pick ports: %w", err)
	}
	// Keys: the authorities' v3 keys from tor-gencert (made once per
	// process); every authority's and relay's identity key made here, so
	// that DirAuthority lines and the bandwidth file can name them before
	// any tor runs.
	auth, err := authorityKeySets(gencert, numAuthorities)
	if err != nil {
		return fmt.Errorf("authority keys: %w", err)
	}
	bw := fmt.Sprintf("%d\n", time.Now().Unix())
	for i := range numAuthorities + numRelays {
		keysDir := filepath.Join(n.dir, nodeName(i), "data", "keys")
		fp, err := makeRelayIdentity(keysDir)
		if err != nil {
			return fmt.Errorf("keys of %s: %w", nodeName(i), err)
		}
		bw += fmt.Sprintf("node_id=$%s bw=1000\n", fp)
		if i < numAuthorities {
			if err := auth[i].write(keysDir); err != nil {
				return fmt.Errorf("keys of %s: %w", nodeName(i), err)
			}
			n.auths = append(n.auths, fmt.Sprintf("DirAuthority %s orport=%d v3ident=%s 127.0.0.1:%d %s",
				authName(i), ports[2*i], auth[i].v3ident, ports[2*i+1], fp))
		}
	}
	n.phase("keys")
	bwFile := filepath.Join(n.dir, "bandwidths")
	if err := os.WriteFile(bwFile, []byte(bw), 0o600); err != nil {
		return err
	}
	n.lines = append([]string{"TestingTorNetwork 1", "UseDefaultFallbackDirs 0", "VanguardsLiteEnabled 0"}, n.auths...)

	offset := votingOffset(time.Now(), n.voting)
	for i := range numAuthorities {
		tor, err := n.launch(authName(i),
			"TestingV3AuthVotingStartOffset "+strconv.Itoa(offset),
			"ORPort 127.0.0.1:"+strconv.Itoa(ports[2*i]),
			"DirPort 127.0.0.1:"+strconv.Itoa(ports[2*i+1]),
			"AuthoritativeDirectory 1",
			"V3AuthoritativeDirectory 1",
			"ContactInfo "+authName(i)+"@tortest.invalid",
			// The HSDir and Guard flags go to every relay at once instead
			// of after hours of uptime.
			"TestingDirAuthVoteHSDir *",
			"TestingDirAuthVoteGuard *",
			// Every relay Stable at once too: onion-service circuits need
			// Stable relays at every hop, and with only the longest-running
			// relays Stable the client's first circuits are all refused.
			"AuthDirVoteStableGuaranteeMinUptime 0",
			"AuthDirVoteStableGuaranteeMTBF 0",
			// Measured bandwidths for every relay from the first vote:
			// relays advertise none until they have carried traffic, and
			// a consensus of zero weights makes clients pick the same relay
			// for every hop.
			"V3BandwidthsFile "+bwFile,
		)
		if err != nil {
			return fmt.Errorf("start authority %d: %w", i, err)
		}
		n.authorities = append(n.authorities, tor)
	}
	for i := range numRelays {
		tor, err := n.launch(relayName(i), "ORPort 127.0.0.1:auto")
		if err != nil {
			return fmt.Errorf("start relay %d: %w", i, err)
		}
		n.relays = append(n.relays, tor)
	}
	// Wait for a consensus listing every authority and relay as a running
	// HSDir (the first one, usually; the next, 10 s later, if a descriptor
	// missed the first vote).
	deadline := n.started.Add(BootstrapTimeout)
	want := numAuthorities + numRelays
	allHSDirs := func(tor *Tor) func() (bool, error) {
		return func() (bool, error) {
			ns, err := tor.getInfo("ns/all")
			if err != nil {
				return false, err
			}
			got := countFlag(ns, "HSDir")
			return got >= want, fmt.Errorf("%d of %d relays are HSDirs", got, want)
		}
	}
	if err := n.authorities[0].waitFor("consensus with every relay an HSDir", time.Until(deadline), allHSDirs(n.authorities[0])); err != nil {
		return err
	}
	n.phase("consensus")
	// The relays asked for a consensus before there was one and now back
	// off for up to tens of seconds; a reload makes them ask at once.
	// Once they have it and the microdescriptors, the client starts: the
	// consensus is there for it, and its directory guards (the relays)
	// serve it the microdescriptors.
	for _, r := range n.relays {
		if _, err := r.control("SIGNAL RELOAD"); err != nil {
			return err
		}
	}
	for _, r := range n.relays {
		err := r.waitFor("enough directory info", time.Until(deadline), func() (bool, error) {
			v, err := r.getInfo("status/enough-dir-info")
			return v == "1", err
		})
		if err != nil {
			return err
		}
	}
	n.phase("relays")
	n.client, err = n.launch("client", "SocksPort 127.0.0.1:auto")
	if err != nil {
		return fmt.Errorf("start client: %w", err)
	}
	if err := n.client.waitBootstrapped(time.Until(deadline)); err != nil {
		return err
	}
	n.phase("client")
	if err := n.client.waitFor("consensus with every relay an HSDir", time.Until(deadline), allHSDirs(n.client)); err != nil {
		return err
	}
	if n.client.SOCKSAddr() == "" {
		return errors.New("client has no SOCKS listener")
	}
	return nil
}

func authName(i int) string  { return fmt.Sprintf("auth%d", i) }
func relayName(i int) string { return fmt.Sprintf("relay%d", i) }

// nodeName names node i of authorities then relays.
func nodeName(i int) string {
	if i < numAuthorities {
		return authName(i)
	}
	return relayName(i - numAuthorities)
}

// countFlag counts the routers of a consensus ("r" and "s" lines) that are
// Running and have flag.
func countFlag(ns, flag string) int {
	c := 0
	for _, l := range strings.Split(ns, "\n") {
		if !strings.HasPrefix(l, "s ") {
			continue
		}
		f := strings.Fields(l)
		has := map[string]bool{}
		for _, x := range f[1:] {
			has[x] = true
		}
		if has["Running"] && has[flag] {
			c++
		}
	}
	return c
}

// launch starts one tor of the network: the network's lines, the lines
// every tor here gets (data directory, notice log, control port with cookie
// authentication, exit when this process exits), then the role's lines.
// Relays and authorities (tors with an ORPort) also get lines that make
// them non-exits publishing 127.0.0.1 at once, without reachability tests.
func (n *Network) launch(name string, role ...string) (*Tor, error) {
	dir := filepath.Join(n.dir, name)
	lines := append([]string{}, n.lines...)
	lines = append(lines,
		"Nickname "+name,
		"DataDirectory "+filepath.Join(dir, "data"),
		"Log notice file "+filepath.Join(dir, "notice.log"),
		"SafeLogging 0",
		"ControlPort 127.0.0.1:auto",
		"ControlPortWriteToFile "+filepath.Join(dir, "control.port"),
		"CookieAuthentication 1",
		"__OwningControllerProcess "+strconv.Itoa(os.Getpid()),
	)
	relay := false
	for _, l := range role {
		k, _ := splitLine(l)
		relay = relay || strings.EqualFold(k, "ORPort")
	}
	if relay {
		lines = append(lines,
			"SocksPort 0",
			"Address 127.0.0.1",
			"AssumeReachable 1",
			"ExitRelay 0",
			"ExitPolicy reject *:*",
			"ServerDNSDetectHijacking 0",
		)
		if strings.HasPrefix(name, "auth") {
			lines = append(lines, authorityTiming(n.voting)...)
		}
	}
	lines = append(lines, role...)
	tor, err := launch(n.torPath, name, dir, lines, n.auths)
	if err != nil {
		return nil, err
	}
	n.mu.Lock()
	n.all = append(n.all, tor)
	n.mu.Unlock()
	return tor, nil
}

// reservedOptions are set by StartTor itself.
var reservedOptions = names("DataDirectory", "SocksPort", "ControlPort",
	"ControlPortWriteToFile", "CookieAuthentication", "CookieAuthFile",
	"__OwningControllerProcess", "Nickname", "TestingTorNetwork",
	"UseDefaultFallbackDirs", "DirAuthority")

// StartTor starts an extra tor in this network, for tests that need, say,
// an onion service or a second client with client-auth keys. Its torrc is
// TorrcLines, then the lines StartTor sets itself (DataDirectory under
// Dir, "Log notice file", "ControlPort 127.0.0.1:auto" with cookie
// authentication, "SocksPort 127.0.0.1:auto"), then lines, which must not
// set those options; the whole torrc must pass the package's safety check,
// or nothing is started and the test fails. StartTor returns once the tor
// answers on its control port, without waiting for it to bootstrap (see
// Tor.WaitBootstrapped). The tor is stopped, by its PID, when t ends.
func (n *Network) StartTor(t testing.TB, lines ...string) *Tor {
	t.Helper()
	tor, err := n.startExtra(lines)
	if err != nil {
		t.Fatalf("tortest: start tor: %v", err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			t.Log(tor.LogTail(logTailLines))
		}
		reportStop(t, tor.Stop())
	})
	if tor.SOCKSAddr() == "" {
		t.Fatalf("tortest: start tor: %s does not answer on its control port\n%s", tor.Name(), tor.LogTail(logTailLines))
	}
	return tor
}

func (n *Network) startExtra(lines []string) (*Tor, error) {
	for _, l := range lines {
		k, _ := splitLine(l)
		if o, ok := reservedOptions[strings.ToLower(k)]; ok {
			return nil, fmt.Errorf("%s is set by StartTor, not by its caller (line %q)", o, l)
		}
	}
	n.mu.Lock()
	n.extra++
	name := fmt.Sprintf("tor%d", n.extra)
	n.mu.Unlock()
	return n.launch(name, append([]string{"SocksPort 127.0.0.1:auto"}, lines...)...)
}

// CheckTorrc applies the package's safety check to a complete torrc (one
// option per element) as if it were to join this network, and returns why
// it is refused, or nil. Tests of the application's own torrc can use it.
func (n *Network) CheckTorrc(lines []string) error { return checkTorrc(lines, n.auths) }

// TorrcLines returns the lines another tor (the application's own, say)
// needs in its torrc to join this network and no other: "TestingTorNetwork
// 1", "UseDefaultFallbackDirs 0", the network's DirAuthority lines, and
// "VanguardsLiteEnabled 0". The last is for reliability, not safety: with
// vanguards-lite tor does not keep an onion-service circuit's guard out of
// its last hop, and among the three relays that carry weight in a young
// network's consensus it often picks the same one for both, and such
// circuits fail. Clients and onion services need nothing else. A new
// slice every call.
func (n *Network) TorrcLines() []string { return append([]string(nil), n.lines...) }

// Client is the network's client tor.
func (n *Network) Client() *Tor { return n.client }

// SOCKSAddr is the client tor's SOCKS5 address, "127.0.0.1:PORT".
func (n *Network) SOCKSAddr() string { return n.client.SOCKSAddr() }

// HTTPClient returns a new *http.Client whose requests go through the
// client tor's SOCKS port; see Tor.HTTPClient.
func (n *Network) HTTPClient() *http.Client { return n.client.HTTPClient() }

// NewNym sends SIGNAL NEWNYM to the client tor; see Tor.NewNym.
func (n *Network) NewNym() error { return n.client.NewNym() }

// Get fetches rawURL through the client tor, retrying until timeout; see
// Tor.Get.
func (n *Network) Get(rawURL string, timeout time.Duration) (status int, body []byte, err error) {
	return n.client.Get(rawURL, timeout)
}

// reportStop logs a tor that had to be killed and fails the test for one
// that could not be stopped at all.
func reportStop(t testing.TB, err error) {
	switch {
	case err == nil:
	case errors.Is(err, ErrKilled):
		t.Log(err)
	default:
		t.Error(err)
	}
}

// stopAll stops every tor of the network at once and returns the errors.
func (n *Network) stopAll() []error {
	n.mu.Lock()
	all := append([]*Tor(nil), n.all...)
	n.mu.Unlock()
	errs := make([]error, len(all))
	var wg sync.WaitGroup
	for i, tor := range all {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = tor.Stop()
		}()
	}
	wg.Wait()
	var out []error
	for _, err := range errs {
		if err != nil {
			out = append(out, err)
		}
	}
	return out
}

// logTails logs the end of every tor's logs.
func (n *Network) logTails(t testing.TB) {
	n.mu.Lock()
	all := append([]*Tor(nil), n.all...)
	n.mu.Unlock()
	for _, tor := range all {
		t.Log(tor.LogTail(logTailLines))
	}
}

// usedPorts are the ports FreePorts has handed out in this process, never
// handed out twice.
var (
	usedMu    sync.Mutex
	usedPorts = map[int]bool{}
)

// FreePorts returns k distinct TCP ports free on 127.0.0.1 a moment ago,
// none handed out before by this process. Another process may still take
// one before its server binds it; in a namespace of MainInNetns no other
// process can. Every test that needs a fixed port takes it here.
func FreePorts(k int) ([]int, error) {
	usedMu.Lock()
	defer usedMu.Unlock()
	var ports []int
	var ls []net.Listener
	defer func() {
		for _, l := range ls {
			l.Close()
		}
	}()
	for tries := 0; len(ports) < k; tries++ {
		if tries > 100*k {
			return nil, errors.New("no free ports")
		}
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, err
		}
		ls = append(ls, l)
		p := l.Addr().(*net.TCPAddr).Port
		if !usedPorts[p] {
			usedPorts[p] = true
			ports = append(ports, p)
		}
	}
	return ports, nil
}
