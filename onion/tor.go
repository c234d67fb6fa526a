package onion

import (
	"bufio"
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/textproto"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/cretz/bine/control"
	"github.com/onionchat/onionchat/internal/securefile"
	"github.com/onionchat/onionchat/internal/setting"
)

// Config configures Start. The zero value of every field is documented; a
// zero Config with a DataDir is a hardened service with a stable address.
//
// The fields with a toml tag are the [tor] section of the configuration
// file: the tag is the key there, Validate the range an owner may set,
// WithDefaults the defaults config.example.toml documents. The others
// come from elsewhere (data_dir, cluster.front) or from code.
type Config struct {
	TorPath string `toml:"path"` // tor binary; "" means "tor" on $PATH
	// DataDir holds the service key and authorized_clients (ServiceDir)
	// and tor's own state (TorDir: entry guards, directory cache), kept
	// across restarts. When Ephemeral, only tor's state; "" there keeps
	// tor's state in RuntimeDir, gone at every stop.
	DataDir    string `toml:"-"`
	RuntimeDir string `toml:"runtime_dir"` // the torrc, tor's control socket and cookie, the visitors' socket; "" means a new temporary directory, removed by Close
	Ephemeral  bool   `toml:"ephemeral"`   // false: the address is kept in DataDir; true: a new address whose key never touches the disk

	Sandbox Feature `toml:"sandbox"`     // tor's seccomp sandbox; zero: FeatureAuto
	PoW     Feature `toml:"pow_defense"` // proof-of-work defence; zero: FeatureAuto

	SafeLogging     *bool  `toml:"safe_logging"`      // tor scrubs addresses from its log; nil: true
	AvoidDiskWrites *bool  `toml:"avoid_disk_writes"` // tor writes to disk as little as it can; nil: true
	IntroDoSDefense *bool  `toml:"intro_dos_defense"` // introduction points rate-limit introductions; nil: true
	MaxStreams      int    `toml:"max_streams"`       // streams per rendezvous circuit, over which it is closed; 0: DefaultMaxStreams
	MaxMemInQueues  string `toml:"max_mem_in_queues"` // tor's cell queue memory cap; "": DefaultMaxMemInQueues

	// PublishTimeout bounds the time from start to the descriptor's first
	// upload; zero means DefaultPublishTimeout.
	PublishTimeout time.Duration `toml:"publish_timeout"`

	// OnionbalanceFront is the address ("….onion") of an Onionbalance
	// front that publishes this service's introduction points under its
	// own address; "" means none. Set, tor gets
	// HiddenServiceOnionbalanceInstance 1 and the service directory an
	// ob_config file naming the front (0600). It needs the kept address
	// (not Ephemeral) and no client-authorization keys: Onionbalance
	// 0.2.2 publishes the front's descriptor without client
	// authorization, so anyone with the front address would get in.
	OnionbalanceFront string `toml:"-"`

	// ExtraTorrc lines are appended to the torrc, for tests on a private
	// network only: refused unless one of them is "TestingTorNetwork 1".
	// They override earlier lines.
	ExtraTorrc []string `toml:"extra_torrc"`

	// Progress receives start-up messages for the owner (bootstrap
	// percentage); nil means none.
	Progress func(msg string) `toml:"-"`
	// Logger receives tor's warnings and errors; nil means silent.
	Logger *slog.Logger `toml:"-"`
}

// WithDefaults returns c with every zero setting at its default.
func (c Config) WithDefaults() Config {
	c.Sandbox = cmp.Or(c.Sandbox, FeatureAuto)
	c.PoW = cmp.Or(c.PoW, FeatureAuto)
	for _, b := range []**bool{&c.SafeLogging, &c.AvoidDiskWrites, &c.IntroDoSDefense} {
		if *b == nil {
			*b = new(true)
		}
	}
	if c.MaxStreams <= 0 {
		c.MaxStreams = DefaultMaxStreams
	}
	c.MaxMemInQueues = cmp.Or(c.MaxMemInQueues, DefaultMaxMemInQueues)
	if c.PublishTimeout <= 0 {
		c.PublishTimeout = DefaultPublishTimeout
	}
	return c
}

// memRe is what Validate accepts as tor's MaxMemInQueues.
var memRe = regexp.MustCompile(`^[0-9]{1,6} ?(KB|MB|GB|KBytes|MBytes|GBytes)$`)

// Validate reports the first setting of the [tor] section out of what
// an owner may set, as a *setting.Error naming its key; a zero setting
// is out of range (see setting.Range). Start checks less: only what
// tor's torrc cannot take.
func (c Config) Validate() error {
	if c.RuntimeDir != "" {
		if err := CheckTorrcDir(c.RuntimeDir, true); err != nil {
			return setting.Errorf("runtime_dir", "%v", err)
		}
	}
	for _, f := range []struct {
		key string
		v   Feature
	}{{"sandbox", c.Sandbox}, {"pow_defense", c.PoW}} {
		if f.v != FeatureAuto && f.v != FeatureOn && f.v != FeatureOff {
			return setting.Errorf(f.key, "want %q, %q or %q, not %q", FeatureAuto, FeatureOn, FeatureOff, string(f.v))
		}
	}
	if err := setting.Range("max_streams", c.MaxStreams, 1, 65535); err != nil {
		return err
	}
	if !memRe.MatchString(c.MaxMemInQueues) {
		return setting.Errorf("max_mem_in_queues", `want a size such as "64 MB", not %q`, c.MaxMemInQueues)
	}
	if err := setting.Range("publish_timeout", c.PublishTimeout, time.Second, time.Hour); err != nil {
		return err
	}
	return checkExtraTorrc(c.ExtraTorrc)
}

// Service is a running onion service and the tor behind it.
type Service struct {
	// Addr is the service's address, "….onion".
	Addr string
	// Listener yields visitors' connections, each with its Tor circuit as
	// remote address. Close closes it.
	Listener net.Listener
	// Support is what the installed tor supports; Sandbox and PoW say
	// what is on.
	Support      Support
	Sandbox, PoW bool
	// Published is the time from Start until the descriptor was uploaded.
	Published time.Duration
	// Clients are the names of the client-authorization keys tor loaded
	// at start, checked (see Start); none means that anyone with the
	// address can reach the service.
	Clients []string

	conf         Config
	cmd          *exec.Cmd
	ctl          *control.Conn
	runtime      string
	ownsRT       bool
	socket       string
	control      string // tor's control socket
	hsDir        string
	torDir       string
	clientsStamp string            // authorized_clients when CheckClients read it
	clientKeys   map[string]string // and its keys, by file name
	ephemeralKey []byte            // the key feedKey hands to tor, then clears
	keyFed       chan error        // feedKey's result
	done         chan struct{}
	closing      chan struct{}
	bootstrapped chan struct{} // closed when tor's log says "Bootstrapped 100%"
	waitErr      error
	failErr      error // why onionchat stopped tor itself (failClosed)
	stopping     bool
	mu           sync.Mutex
	lastLines    []string
	authWarnings []string // tor's log lines about client authorization
	closeOnce    sync.Once
	stopOnce     sync.Once
}

// Start starts tor with onionchat's torrc and waits, within
// Config.PublishTimeout, until the service's descriptor is uploaded.
//
// It fails closed on client authorization. Before tor starts, every file
// in authorized_clients must be a key tor will load (CheckClients); once
// tor has published, its log must hold no warning about client
// authorization, and its descriptor must say what the files say: with
// keys, that the introduction points are readable only with a key; without,
// that they are readable by all (descriptorOpen). Otherwise Start stops
// tor and returns an error naming the file or the mismatch. While the
// service runs, a change to authorized_clients is applied and checked the
// same way, or, where tor cannot reload it (its sandbox), tor is stopped
// with the reason (see Err): never does the service go on with a set of
// keys other than the one on disk.
func Start(ctx context.Context, c Config) (*Service, error) {
	start := time.Now()
	if err := c.check(); err != nil {
		return nil, err
	}
	torPath, err := FindTor(c.TorPath)
	if err != nil {
		return nil, err
	}
	sup, err := Detect(ctx, torPath)
	if err != nil {
		return nil, err
	}
	s := &Service{conf: c, Support: sup, done: make(chan struct{}), closing: make(chan struct{}),
		bootstrapped: make(chan struct{}), keyFed: make(chan error, 1)}
	if s.Sandbox, err = want("tor.sandbox", c.Sandbox, sup.Sandbox); err != nil {
		return nil, err
	}
	if s.PoW, err = want("tor.pow_defense", c.PoW, sup.PoW); err != nil {
		return nil, err
	}
	if err := s.prepareDirs(); err != nil {
		s.cleanup()
		return nil, err
	}
	if err := s.start(ctx, torPath); err != nil {
		s.Close()
		return nil, err
	}
	timeout := c.WithDefaults().PublishTimeout
	wctx, cancel := context.WithTimeout(ctx, timeout-time.Since(start))
	defer cancel()
	err = s.waitPublished(wctx)
	if err == nil && c.Ephemeral {
		select { // fed by now: tor cannot publish without the key
		case err = <-s.keyFed:
		case <-wctx.Done():
			err = wctx.Err()
		}
	}
	if err == nil && !c.Ephemeral {
		err = s.verifyClients(wctx)
	}
	if err != nil {
		s.Close()
		if errors.Is(err, context.DeadlineExceeded) {
			return nil, fmt.Errorf("onion: the service was not published within %v (tor.publish_timeout): "+
				"is this machine online? tor said: %s", timeout, s.tail())
		}
		return nil, err
	}
	s.Published = time.Since(start)
	if !c.Ephemeral {
		go s.watchClients()
	}
	return s, nil
}

// check refuses, before anything runs, a Config value that would reach the
// torrc and cannot be written there safely (see CheckTorrcValue).
func (c Config) check() error {
	for _, v := range []struct{ what, val string }{
		{"data directory", c.DataDir},
		{"runtime directory", c.RuntimeDir},
		{"MaxMemInQueues", c.MaxMemInQueues},
	} {
		if v.val == "" {
			continue
		}
		if err := CheckTorrcValue(v.val); err != nil {
			return fmt.Errorf("onion: %s: the value %w; it would be written into tor's configuration", v.what, err)
		}
	}
	if c.RuntimeDir != "" {
		if err := CheckSocketPath(c.RuntimeDir); err != nil {
			return fmt.Errorf("onion: runtime directory: the path %w", err)
		}
	}
	if err := checkFront(c); err != nil {
		return err
	}
	if err := checkExtraTorrc(c.ExtraTorrc); err != nil {
		return fmt.Errorf("onion: %w", err)
	}
	return nil
}

func want(key string, f Feature, supported bool) (bool, error) {
	switch f {
	case FeatureOff:
		return false, nil
	case FeatureOn:
		if !supported {
			return false, fmt.Errorf("onion: %s is \"on\" but this tor does not support it; set it to \"auto\"", key)
		}
	}
	return supported, nil
}

// prepareDirs sets up the runtime directory, the service directory and
// the socket path.
func (s *Service) prepareDirs() error {
	c := s.conf
	s.runtime = c.RuntimeDir
	if s.runtime == "" {
		d, err := os.MkdirTemp("", "onionchat-")
		if err != nil {
			return fmt.Errorf("onion: runtime directory: %w", err)
		}
		s.runtime, s.ownsRT = d, true
	} else if err := securefile.EnsureDir(s.runtime); err != nil {
		return fmt.Errorf("onion: runtime directory: %w", err)
	}
	s.socket = filepath.Join(s.runtime, "hub.sock")
	if len(s.socket) > 100 {
		return fmt.Errorf("onion: socket path %s is too long for a unix socket; choose a shorter tor.runtime_dir", s.socket)
	}
	if err := s.prepareTorDir(); err != nil {
		return err
	}
	if c.Ephemeral {
		return s.prepareEphemeral()
	}
	if c.DataDir == "" {
		return errors.New("onion: no data directory for the service key")
	}
	dir, addr, err := EnsureKey(c.DataDir)
	if err != nil {
		return err
	}
	s.hsDir, s.Addr = dir, addr
	if err := ownedDir(dir); err != nil {
		return err
	}
	// The stamp is taken first: a change after the check is the watcher's.
	s.clientsStamp = clientsStamp(filepath.Join(dir, ClientsDir))
	if s.Clients, s.clientKeys, err = CheckClients(c.DataDir); err != nil {
		return err
	}
	return writeOBConfig(dir, c.OnionbalanceFront, len(s.Clients))
}

// TorDir is the subdirectory of the data directory that is tor's own
// DataDirectory: its state file (the entry guards it chose) and its cache
// of the directory. Kept across restarts, so that a restart, forced or
// not, neither hands an attacker a new pick of guards nor downloads the
// whole directory again.
const TorDir = "tor"

// prepareTorDir makes tor's DataDirectory (TorDir in the data directory,
// or in the runtime directory without one), private and this user's, and
// removes the control-port files that bine leaves there at every start.
func (s *Service) prepareTorDir() error {
	base := s.conf.DataDir
	if base == "" {
		base = s.runtime
	} else if err := securefile.EnsureDir(base); err != nil {
		return fmt.Errorf("onion: data directory: %w", err)
	}
	s.torDir = filepath.Join(base, TorDir)
	if err := securefile.EnsureDir(s.torDir); err != nil {
		return fmt.Errorf("onion: tor's directory: %w", err)
	}
	if err := ownedDir(s.torDir); err != nil {
		return err
	}
	stale, _ := filepath.Glob(filepath.Join(s.torDir, "control-port-*"))
	for _, f := range stale {
		os.Remove(f)
	}
	return nil
}

// ownedDir refuses a directory tor will refuse: another user's.
func ownedDir(dir string) error {
	fi, err := os.Stat(dir)
	if err != nil {
		return fmt.Errorf("onion: %w", err)
	}
	return torOwns(dir, fi)
}

var bootstrapRe = regexp.MustCompile(`Bootstrapped (\d+)% \(([^)]*)\)`)

func (s *Service) start(ctx context.Context, torPath string) error {
	os.Remove(s.socket)
	ln, err := net.Listen("unix", s.socket)
	if err != nil {
		return fmt.Errorf("onion: listen on %s: %w", s.socket, err)
	}
	s.Listener = CircuitListener{ln}

	s.control = filepath.Join(s.runtime, ControlSocket)
	rc := torrc{dataDir: s.torDir, control: s.control, cookieFile: filepath.Join(s.runtime, "control_auth_cookie"),
		serviceDir: s.hsDir, socket: s.socket, sandbox: s.Sandbox, pow: s.PoW, conf: s.conf}
	text, err := rc.render()
	if err != nil {
		return err
	}
	torrcPath := filepath.Join(s.runtime, "torrc")
	defaults := filepath.Join(s.runtime, "torrc-defaults")
	if err := os.WriteFile(torrcPath, []byte(text), 0o600); err != nil {
		return fmt.Errorf("onion: write torrc: %w", err)
	}
	if err := os.WriteFile(defaults, nil, 0o600); err != nil {
		return fmt.Errorf("onion: write torrc: %w", err)
	}
	if s.conf.Ephemeral {
		go s.feedKey()
	}
	os.Remove(s.control) // a killed run's: tor would not bind over it, and it must not be dialled
	if err := s.spawn(torPath, torrcPath, defaults); err != nil {
		return err
	}
	ctl, err := s.connect(ctx)
	if err != nil {
		return fmt.Errorf("onion: start tor: %w; tor said: %s", err, s.tail())
	}
	s.ctl = ctl
	return nil
}

// ControlSocket is the name, in the runtime directory, of tor's control
// port: a unix socket, so that onion mode opens no TCP port at all.
const ControlSocket = "control.sock"

// spawn starts tor with the torrc and its log on a pipe to readLog; done
// is closed when it exits.
func (s *Service) spawn(torPath, torrcPath, defaults string) error {
	r, w, err := os.Pipe()
	if err != nil {
		return fmt.Errorf("onion: start tor: %w", err)
	}
	cmd := exec.Command(torPath, "-f", torrcPath, "--defaults-torrc", defaults)
	cmd.Stdout, cmd.Stderr = w, w
	// Its own process group: a Ctrl-C in the terminal reaches onionchat
	// alone, which stops tor in order. Pdeathsig is a third way for tor to
	// go with onionchat, after the control connection and the owner's PID
	// (see torrc), for a tor that has SIGTERM unblocked.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGTERM}
	err = cmd.Start()
	w.Close()
	if err != nil {
		r.Close()
		return fmt.Errorf("onion: start tor: %w", err)
	}
	s.cmd = cmd
	go s.readLog(r)
	go func() {
		err := cmd.Wait()
		s.mu.Lock()
		s.waitErr = err
		s.mu.Unlock()
		close(s.done)
	}()
	return nil
}

// controlTimeout bounds the wait for tor's control socket: tor opens it
// once it has read its configuration and cached state, seconds on a Pi.
const controlTimeout = time.Minute

// connect dials tor's control socket as soon as tor has opened it,
// authenticates with the cookie and takes ownership of tor: from then on
// tor exits when this connection closes, whether Close closes it or the
// kernel does because onionchat died (SIGKILL, a crash, the OOM killer).
func (s *Service) connect(ctx context.Context) (*control.Conn, error) {
	deadline := time.After(controlTimeout)
	for {
		c, err := net.DialTimeout("unix", s.control, time.Second)
		if err == nil {
			ctl := control.NewConn(textproto.NewConn(c))
			if err = ctl.Authenticate(""); err == nil {
				err = ctl.TakeOwnership()
			}
			if err != nil {
				ctl.Close()
				return nil, fmt.Errorf("control port: %w", err)
			}
			return ctl, nil
		}
		select {
		case <-s.done:
			return nil, errors.New("tor exited")
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-deadline:
			return nil, fmt.Errorf("tor opened no control socket within %v: %w", controlTimeout, err)
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// readLog reads tor's log (stdout): bootstrap progress goes to
// Config.Progress, warnings and errors to Config.Logger, warnings about client
// authorization are kept for verifyClients, the last lines are kept for
// error messages, and the rest is dropped.
func (s *Service) readLog(r io.Reader) {
	sc := bufio.NewScanner(r)
	done := false
	for sc.Scan() {
		l := sc.Text()
		s.mu.Lock()
		s.lastLines = append(s.lastLines, l)
		if len(s.lastLines) > 8 {
			s.lastLines = s.lastLines[1:]
		}
		if strings.Contains(l, "[warn]") && isClientAuthWarning(l) && len(s.authWarnings) < 16 {
			s.authWarnings = append(s.authWarnings, afterLevel(l))
		}
		s.mu.Unlock()
		if !done && strings.Contains(l, "Bootstrapped 100%") {
			done = true
			close(s.bootstrapped)
		}
		switch {
		case strings.Contains(l, "[warn]"):
			if s.conf.Logger != nil && !strings.Contains(l, "running Tor as root") {
				s.conf.Logger.Warn("tor: " + afterLevel(l))
			}
		case strings.Contains(l, "[err]"):
			if s.conf.Logger != nil {
				s.conf.Logger.Error("tor: " + afterLevel(l))
			}
		}
		if m := bootstrapRe.FindStringSubmatch(l); m != nil && s.conf.Progress != nil {
			s.conf.Progress("Tor: " + m[1] + "% (" + m[2] + ")")
		}
	}
	io.Copy(io.Discard, r)
}

func afterLevel(l string) string {
	if i := strings.Index(l, "] "); i >= 0 {
		return l[i+2:]
	}
	return l
}

// tail returns tor's last log lines, for an error: "nothing" if none.
func (s *Service) tail() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.tailLocked()
}

// tailLocked is tail for a caller that holds s.mu.
func (s *Service) tailLocked() string {
	if len(s.lastLines) == 0 {
		return "nothing"
	}
	keep := make([]string, len(s.lastLines))
	for i, l := range s.lastLines {
		keep[i] = afterLevel(l)
	}
	return strings.Join(keep, " / ")
}

// waitPublished waits for the HS_DESC UPLOADED event of the service.
func (s *Service) waitPublished(ctx context.Context) error {
	id := strings.TrimSuffix(s.Addr, ".onion")
	events := make(chan control.Event, 32)
	if err := s.ctl.AddEventListener(events, control.EventCodeHSDesc); err != nil {
		return fmt.Errorf("onion: watch descriptor uploads: %w", err)
	}
	defer s.ctl.RemoveEventListener(events, control.EventCodeHSDesc)
	hctx, cancel := context.WithCancel(ctx)
	defer cancel()
	handled := make(chan error, 1)
	go func() { handled <- s.ctl.HandleEvents(hctx) }()
	defer func() { cancel(); <-handled }()
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-s.done:
			return fmt.Errorf("onion: tor exited while publishing: %s", s.tail())
		case err := <-handled:
			handled <- err
			return fmt.Errorf("onion: control connection: %w", err)
		case ev := <-events:
			if d, ok := ev.(*control.HSDescEvent); ok && d.Action == "UPLOADED" && d.Address == id {
				return nil
			}
		}
	}
}

// Done is closed when tor exits, whatever the reason.
func (s *Service) Done() <-chan struct{} { return s.done }

// Err says why tor exited, once Done is closed: nil after Close, else
// why onionchat stopped it to fail closed (a change of client
// authorization it could not apply), or tor's last words.
func (s *Service) Err() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.failErr != nil {
		return s.failErr
	}
	if s.stopping {
		return nil
	}
	if s.waitErr != nil {
		return fmt.Errorf("onion: tor exited (%v); its last words: %s", s.waitErr, s.tailLocked())
	}
	return fmt.Errorf("onion: tor exited; its last words: %s", s.tailLocked())
}

// PID is tor's process id.
func (s *Service) PID() int { return s.cmd.Process.Pid }

// GetConf asks the running tor for its values of keys.
func (s *Service) GetConf(keys ...string) (map[string][]string, error) {
	kvs, err := s.ctl.GetConf(keys...)
	if err != nil {
		return nil, fmt.Errorf("onion: GETCONF: %w", err)
	}
	m := map[string][]string{}
	for _, kv := range kvs {
		m[kv.Key] = append(m[kv.Key], kv.Val)
	}
	return m, nil
}

// Reload asks tor to reread its configuration and the service's
// authorized clients (SIGNAL RELOAD, as SIGHUP). Live circuits stay up.
// With tor's sandbox on, a reload cannot reopen files and tor exits:
// Reload refuses.
func (s *Service) Reload() error {
	if s.Sandbox {
		return errors.New("onion: tor's sandbox forbids reloading; restart instead")
	}
	if err := s.ctl.Signal("RELOAD"); err != nil {
		return fmt.Errorf("onion: reload: %w", err)
	}
	return nil
}

// Close stops tor (SIGNAL HALT, SIGKILL if it lingers; see stopTor),
// closes the listener and removes what must not outlive the process: the
// socket, an ephemeral key, a temporary runtime directory.
func (s *Service) Close() error {
	s.closeOnce.Do(func() {
		s.mu.Lock()
		s.stopping = true
		s.mu.Unlock()
		close(s.closing)
		s.stopTor()
		s.cleanup()
	})
	return nil
}

// haltTimeout bounds the wait for tor to exit once asked: HALT takes it
// tens of milliseconds, saving its state.
const haltTimeout = 5 * time.Second

// stopTor stops tor and waits until it has exited: SIGNAL HALT over the
// control connection, which tor obeys whatever its signal mask (under
// `Sandbox 1` its main thread may have SIGTERM blocked) and which saves
// its state, entry guards included; SIGTERM where there is no control
// connection yet; SIGKILL, by PID, only if tor is still running
// haltTimeout later.
func (s *Service) stopTor() {
	if s.cmd == nil || s.cmd.Process == nil {
		return
	}
	s.stopOnce.Do(func() {
		if s.ctl != nil {
			go s.ctl.Signal("HALT") // returns when tor answers or exits
		} else {
			s.cmd.Process.Signal(syscall.SIGTERM)
		}
		select {
		case <-s.done:
		case <-time.After(haltTimeout):
			if s.conf.Logger != nil {
				s.conf.Logger.Warn(fmt.Sprintf("tor did not stop within %v; killed, so it saved no state", haltTimeout))
			}
			s.cmd.Process.Kill()
			<-s.done
		}
		if s.ctl != nil {
			s.ctl.Close()
		}
	})
	<-s.done
}

// failClosed stops tor, and with it the service, because of err, which Err
// then returns: the owner sees the reason, and a service manager restarts
// onionchat with what is on disk.
func (s *Service) failClosed(err error) {
	s.mu.Lock()
	if s.failErr == nil {
		s.failErr = err
	}
	s.mu.Unlock()
	s.stopTor()
}

func (s *Service) cleanup() {
	if s.Listener != nil {
		s.Listener.Close()
	}
	if s.socket != "" {
		os.Remove(s.socket)
	}
	if s.conf.Ephemeral && s.hsDir != "" {
		os.RemoveAll(s.hsDir)
	}
	if s.ownsRT {
		os.RemoveAll(s.runtime)
	}
}

// clientsPoll is how often a running service looks for added or removed
// client-auth keys (onionchat auth add/remove run as separate commands).
const clientsPoll = 2 * time.Second

// watchClients reacts when authorized_clients changes (files added,
// removed, rewritten, re-owned). Without tor's sandbox, when keys were
// only added, it checks the new set (CheckClients), has tor reload it,
// which keeps live chats, and checks what tor loaded (verifyReload). A
// key removed or replaced needs new introduction points, so a new tor
// (see the comment in the loop). With the sandbox tor cannot
// reread its files (a reload makes it exit), so the running tor would go
// on with the old set: a revoked friend still admitted, or a service open
// that the owner has just closed. In that case, and whenever a check
// fails, it stops tor with the reason (failClosed), and onionchat exits
// non-zero for its service manager to restart it with the new set. It
// returns when tor exits or the service closes.
func (s *Service) watchClients() {
	dir := filepath.Join(s.hsDir, ClientsDir)
	t := time.NewTicker(clientsPoll)
	defer t.Stop()
	for {
		select {
		case <-s.done:
			return
		case <-s.closing:
			return
		case <-t.C:
		}
		now := clientsStamp(dir)
		if now == s.clientsStamp {
			continue
		}
		s.clientsStamp = now
		if s.Sandbox {
			s.failClosed(fmt.Errorf("onion: client authorization changed (%s), and tor's sandbox cannot reload it: "+
				"onionchat stops rather than serve the old set of keys; start it again to apply the new one "+
				"(under systemd it restarts by itself)", dir))
			return
		}
		names, keys, err := CheckClients(s.conf.DataDir)
		if gone := revoked(s.clientKeys, keys); err == nil && gone != "" {
			// v3 services check client authorization only when a visitor
			// decrypts the descriptor: a revoked friend who holds it would
			// go on introducing himself at the introduction points that a
			// reload keeps. A new tor publishes new ones.
			s.failClosed(fmt.Errorf("onion: the client key %s was removed or replaced: onionchat stops so that its tor publishes "+
				"new introduction points, which a revoked client cannot reach with the descriptor it may hold; "+
				"start it again to apply the new set of keys (under systemd it restarts by itself)", filepath.Join(dir, gone)))
			return
		}
		if err == nil {
			err = s.reloadClients(len(names))
		}
		if err != nil {
			s.failClosed(fmt.Errorf("client authorization changed and cannot be applied safely, so onionchat stops: %w", err))
			return
		}
		s.clientKeys = keys
		if s.conf.Logger != nil {
			s.conf.Logger.Info("client authorization changed; tor reloaded it and loaded every key", "keys", len(names))
		}
	}
}

// isClientAuthWarning reports whether a line of tor's log is about its
// client-authorization keys. tor 0.4.9.11 says "Client authorization ..."
// for every key file it skips (unreadable, badly named, unparsable) and
// names the directory when it cannot use it.
func isClientAuthWarning(l string) bool {
	return strings.Contains(l, "Client authorization") || strings.Contains(l, "/"+ClientsDir)
}

// logSyncTimeout bounds the wait for the log reader to catch up with tor.
const logSyncTimeout = 10 * time.Second

// verifyClients checks, once tor has published, that it loaded exactly
// the keys CheckClients found: no warning about client authorization in
// its log (tor loads the keys before it bootstraps, so the log reader
// has them once it has read "Bootstrapped 100%"), and a descriptor that
// requires a key exactly when there are keys.
func (s *Service) verifyClients(ctx context.Context) error {
	select {
	case <-s.bootstrapped:
	case <-ctx.Done():
		return ctx.Err()
	case <-time.After(logSyncTimeout):
		return errors.New("onion: tor's log never said it had bootstrapped, so onionchat cannot tell whether it loaded every client key")
	}
	s.mu.Lock()
	warnings := slices.Clone(s.authWarnings)
	s.mu.Unlock()
	if err := clientWarnings(warnings); err != nil {
		return err
	}
	return s.checkDescriptor(len(s.Clients))
}

func clientWarnings(w []string) error {
	if len(w) == 0 {
		return nil
	}
	return fmt.Errorf("onion: tor did not load every client key, so onionchat refuses to serve: tor said: %s; "+
		"fix or remove the file it names (onionchat auth remove NAME, then onionchat auth add NAME)", strings.Join(w, " / "))
}

// checkDescriptor asks tor for the service's current descriptor and
// checks that it requires a client key exactly when keys > 0.
func (s *Service) checkDescriptor(keys int) error {
	id := strings.TrimSuffix(s.Addr, ".onion")
	kvs, err := s.ctl.GetInfo("hs/service/desc/id/" + id)
	if err != nil || len(kvs) == 0 {
		return fmt.Errorf("onion: read the service's descriptor from tor to check client authorization: %v", err)
	}
	pub, err := addressKey(s.Addr)
	if err != nil {
		return err
	}
	open, err := descriptorOpen(kvs[0].Val, pub)
	if err != nil {
		return err
	}
	switch {
	case keys > 0 && open:
		return fmt.Errorf("onion: %d client keys are in %s, but tor published the service without client authorization; "+
			"onionchat refuses to serve it to anyone with the address", keys, filepath.Join(s.hsDir, ClientsDir))
	case keys == 0 && !open:
		return fmt.Errorf("onion: tor requires a client key that is not in %s; onionchat refuses to serve with keys it cannot see", filepath.Join(s.hsDir, ClientsDir))
	}
	return nil
}

// reloadClients has tor reload its configuration and client keys (SIGNAL
// RELOAD, tor's sandbox off), then checks what it loaded: the WARN events
// tor emits while reloading reach this control connection before the
// reply to the next command, and the descriptor is rebuilt at once when
// the keys change.
func (s *Service) reloadClients(keys int) error {
	events := make(chan control.Event)
	var warnings []string
	drained := make(chan struct{})
	go func() {
		for ev := range events {
			if l, ok := ev.(*control.LogEvent); ok && isClientAuthWarning(l.Raw) {
				warnings = append(warnings, l.Raw)
			}
		}
		close(drained)
	}()
	err := s.ctl.AddEventListener(events, control.EventCodeLogWarn)
	if err == nil {
		err = s.Reload()
		if err == nil {
			_, err = s.ctl.GetInfo("version") // after every event of the reload
		}
		if rerr := s.ctl.RemoveEventListener(events, control.EventCodeLogWarn); err == nil {
			err = rerr
		}
	}
	close(events)
	<-drained
	if err != nil {
		return fmt.Errorf("onion: reload tor's client keys: %w", err)
	}
	if err := clientWarnings(warnings); err != nil {
		return err
	}
	return s.checkDescriptor(keys)
}
