package onion

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/cretz/bine/control"
	"github.com/cretz/bine/process"
	"github.com/cretz/bine/tor"
	"github.com/onionchat/onionchat/internal/securefile"
)

// Conf configures Start. The zero value of every field is documented; a
// zero Conf with a DataDir is a hardened service with a stable address.
type Conf struct {
	TorPath    string // tor binary; "" means "tor" on $PATH
	DataDir    string // holds the service key and authorized_clients; unused when Ephemeral
	RuntimeDir string // tor's working files and the socket; "" means a new temporary directory, removed by Close
	Ephemeral  bool   // false: the address is kept in DataDir; true: a new address, and no key left on disk

	Sandbox Feature // tor's seccomp sandbox; zero: on where supported
	PoW     Feature // proof-of-work defence; zero: on where supported

	NoSafeLogging     bool   // false: tor scrubs addresses from its log
	NoAvoidDiskWrites bool   // false: tor writes to disk as little as it can
	NoIntroDoSDefense bool   // false: introduction points rate-limit introductions
	MaxStreams        int    // streams per rendezvous circuit, over which it is closed; 0: DefaultMaxStreams
	MaxMemInQueues    string // tor's cell queue memory cap; "": DefaultMaxMemInQueues

	// PublishTimeout bounds the time from start to the descriptor's first
	// upload; zero means DefaultPublishTimeout.
	PublishTimeout time.Duration

	// ExtraTorrc lines are appended to the torrc (tests on a private
	// network use it); they override earlier lines.
	ExtraTorrc []string

	// Progress receives start-up messages for the owner (bootstrap
	// percentage); nil means none.
	Progress func(msg string)
	// Logger receives tor's warnings and errors; nil means silent.
	Logger *slog.Logger
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

	conf      Conf
	cmd       *exec.Cmd
	ctl       *control.Conn
	runtime   string
	ownsRT    bool
	socket    string
	hsDir     string
	done      chan struct{}
	closing   chan struct{}
	waitErr   error
	stopping  bool
	mu        sync.Mutex
	lastLines []string
	closeOnce sync.Once
}

// Start starts tor with onionchat's torrc and waits, within
// Conf.PublishTimeout, until the service's descriptor is uploaded.
func Start(ctx context.Context, c Conf) (*Service, error) {
	start := time.Now()
	torPath, err := FindTor(c.TorPath)
	if err != nil {
		return nil, err
	}
	sup, err := Detect(ctx, torPath)
	if err != nil {
		return nil, err
	}
	s := &Service{conf: c, Support: sup, done: make(chan struct{}), closing: make(chan struct{})}
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
	timeout := c.PublishTimeout
	if timeout <= 0 {
		timeout = DefaultPublishTimeout
	}
	wctx, cancel := context.WithTimeout(ctx, timeout-time.Since(start))
	defer cancel()
	if err := s.waitPublished(wctx); err != nil {
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
	if c.Ephemeral {
		s.hsDir = filepath.Join(s.runtime, "ephemeral-onion")
		os.RemoveAll(s.hsDir)
		if err := os.Mkdir(s.hsDir, 0o700); err != nil {
			return fmt.Errorf("onion: %w", err)
		}
		return nil
	}
	if c.DataDir == "" {
		return errors.New("onion: no data directory for the service key")
	}
	dir, addr, err := EnsureKey(c.DataDir)
	if err != nil {
		return err
	}
	s.hsDir, s.Addr = dir, addr
	return nil
}

var bootstrapRe = regexp.MustCompile(`Bootstrapped (\d+)% \(([^)]*)\)`)

func (s *Service) start(ctx context.Context, torPath string) error {
	os.Remove(s.socket)
	ln, err := net.Listen("unix", s.socket)
	if err != nil {
		return fmt.Errorf("onion: listen on %s: %w", s.socket, err)
	}
	s.Listener = CircuitListener{ln}

	dataDir := filepath.Join(s.runtime, "tor")
	if err := os.MkdirAll(dataDir, 0o700); err != nil {
		return fmt.Errorf("onion: %w", err)
	}
	rc := torrc{dataDir: dataDir, serviceDir: s.hsDir, socket: s.socket, sandbox: s.Sandbox, pow: s.PoW, conf: s.conf}
	torrcPath := filepath.Join(s.runtime, "torrc")
	defaults := filepath.Join(s.runtime, "torrc-defaults")
	if err := os.WriteFile(torrcPath, []byte(rc.String()), 0o600); err != nil {
		return fmt.Errorf("onion: write torrc: %w", err)
	}
	if err := os.WriteFile(defaults, nil, 0o600); err != nil {
		return fmt.Errorf("onion: write torrc: %w", err)
	}

	creator := func(ctx context.Context, args ...string) (*exec.Cmd, error) {
		// bine cancels ctx only when its start fails; Close stops tor by PID.
		cmd := exec.CommandContext(ctx, torPath, args...)
		out, err := cmd.StdoutPipe()
		if err != nil {
			return nil, err
		}
		cmd.Stderr = cmd.Stdout
		cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGTERM} // tor dies with us
		s.cmd = cmd
		go s.readLog(out)
		return cmd, nil
	}
	// The process must outlive ctx, which only bounds the start.
	t, err := tor.Start(context.WithoutCancel(ctx), &tor.StartConf{
		ProcessCreator:  process.CmdCreatorFunc(creator),
		DataDir:         dataDir,
		TorrcFile:       torrcPath,
		NoAutoSocksPort: true,
		EnableNetwork:   true,
		NoHush:          true,
		ExtraArgs:       []string{"--defaults-torrc", defaults},
	})
	if s.cmd != nil && s.cmd.Process != nil {
		go func() {
			err := s.cmd.Wait()
			s.mu.Lock()
			s.waitErr = err
			s.mu.Unlock()
			close(s.done)
		}()
	}
	if err != nil {
		if t != nil && t.Control != nil {
			t.Control.Close()
		}
		return fmt.Errorf("onion: start tor: %w; tor said: %s", err, s.tail())
	}
	s.ctl = t.Control
	return nil
}

// readLog reads tor's log (stdout): bootstrap progress goes to
// Conf.Progress, warnings and errors to Conf.Logger, the last lines are
// kept for error messages, and the rest is dropped.
func (s *Service) readLog(r io.Reader) {
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		l := sc.Text()
		s.mu.Lock()
		s.lastLines = append(s.lastLines, l)
		if len(s.lastLines) > 8 {
			s.lastLines = s.lastLines[1:]
		}
		s.mu.Unlock()
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

func (s *Service) tail() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var keep []string
	for _, l := range s.lastLines {
		keep = append(keep, afterLevel(l))
	}
	if len(keep) == 0 {
		return "nothing"
	}
	return strings.Join(keep, " / ")
}

// waitPublished waits for the HS_DESC UPLOADED event of the service.
func (s *Service) waitPublished(ctx context.Context) error {
	if s.Addr == "" { // ephemeral: tor made the key; it writes the hostname at once
		for s.Addr == "" {
			if b, err := os.ReadFile(filepath.Join(s.hsDir, "hostname")); err == nil && len(b) > 0 {
				s.Addr = strings.TrimSpace(string(b))
				break
			}
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-s.done:
				return fmt.Errorf("onion: tor exited: %s", s.tail())
			case <-time.After(50 * time.Millisecond):
			}
		}
	}
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

// Err says why tor exited, once Done is closed.
func (s *Service) Err() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.stopping {
		return nil
	}
	if s.waitErr != nil {
		return fmt.Errorf("onion: tor exited (%v); its last words: %s", s.waitErr, s.tailLocked())
	}
	return fmt.Errorf("onion: tor exited; its last words: %s", s.tailLocked())
}

func (s *Service) tailLocked() string {
	var keep []string
	for _, l := range s.lastLines {
		keep = append(keep, afterLevel(l))
	}
	return strings.Join(keep, " / ")
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

// Close stops tor (SIGTERM by PID, SIGKILL if it lingers), closes the
// listener and removes what must not outlive the process: the socket, an
// ephemeral key, a temporary runtime directory.
func (s *Service) Close() error {
	s.closeOnce.Do(func() {
		s.mu.Lock()
		s.stopping = true
		s.mu.Unlock()
		close(s.closing)
		if s.ctl != nil {
			s.ctl.Close()
		}
		if s.cmd != nil && s.cmd.Process != nil {
			s.cmd.Process.Signal(syscall.SIGTERM)
			select {
			case <-s.done:
			case <-time.After(10 * time.Second):
				s.cmd.Process.Kill()
				<-s.done
			}
		}
		s.cleanup()
	})
	return nil
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

// watchClients reacts when the set of authorized clients changes ("onionchat
// auth add/remove" run as separate commands). Without tor's sandbox it has
// tor reload its client list, which keeps live chats. With the sandbox
// tor cannot reread its files (a reload makes it exit), so it tells the
// owner to restart instead. It returns when tor exits or the service
// closes.
func (s *Service) watchClients() {
	dir := filepath.Join(s.hsDir, ClientsDir)
	last := clientsStamp(dir)
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
		if now == last {
			continue
		}
		last = now
		if s.Sandbox {
			if s.conf.Logger != nil {
				s.conf.Logger.Warn("client authorization changed; restart onionchat to apply it (tor's sandbox cannot reload it; pages reconnect by themselves)")
			}
			continue
		}
		if err := s.Reload(); err != nil {
			if s.conf.Logger != nil {
				s.conf.Logger.Error("client authorization changed but tor did not reload; restart onionchat", "err", err)
			}
			continue
		}
		if s.conf.Logger != nil {
			s.conf.Logger.Info("client authorization changed; tor reloaded it")
		}
	}
}

// clientsStamp summarises the authorized_clients directory: names, sizes
// and modification times.
func clientsStamp(dir string) string {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return ""
	}
	var b strings.Builder
	for _, e := range entries {
		if fi, err := e.Info(); err == nil {
			fmt.Fprintf(&b, "%s/%d/%d;", e.Name(), fi.Size(), fi.ModTime().UnixNano())
		}
	}
	return b.String()
}
