package e2e

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/onionchat/onionchat/internal/testing/need"
	"github.com/onionchat/onionchat/internal/testing/tortest"
	"github.com/onionchat/onionchat/onion"
)

// serviceUID is the user the tests run onionchat (and so its tor) as, as
// systemd's DynamicUser would: not root, so that a file it may not read is
// truly unreadable to its tor.
const serviceUID = 61234

// serviceUser is a service user's world for onionchat: its binary, a home
// with the config, a data directory and a runtime directory, all its own.
type serviceUser struct {
	uid              int
	bin, home        string
	data, runtime    string
	cfg              string
	aliceDir, bobDir string // ClientOnionAuthDirs of friends' tors
}

// newServiceUser sets up serviceUID's directories, or stops the test
// where no second user exists (tests not run as root).
func newServiceUser(t *testing.T, n *tortest.Network) *serviceUser {
	t.Helper()
	if !uidMapped(serviceUID) {
		need.Missing(t, "uid %d, to run onionchat as a user other than root (run the tests as root)", serviceUID)
	}
	top, err := os.MkdirTemp("", "ocsvc")
	must(t, err)
	t.Cleanup(func() { os.RemoveAll(top) })
	must(t, os.Chmod(top, 0o755))
	u := &serviceUser{uid: serviceUID, home: filepath.Join(top, "home"), data: filepath.Join(top, "home", "data"), runtime: filepath.Join(top, "rt")}
	for _, d := range []string{u.home, u.data, u.runtime} {
		must(t, os.Mkdir(d, 0o700))
		must(t, os.Chown(d, u.uid, u.uid))
	}
	// The test binary lives where only root may look: copy it out.
	u.bin = filepath.Join(top, "onionchat")
	b, err := os.ReadFile(Binary(t))
	must(t, err)
	must(t, os.WriteFile(u.bin, b, 0o755))
	u.cfg = filepath.Join(u.home, "onion.toml")
	b, err = os.ReadFile(onionConfig(t, n, u.runtime, ""))
	must(t, err)
	must(t, os.WriteFile(u.cfg, b, 0o600))
	must(t, os.Chown(u.cfg, u.uid, u.uid))
	// The service has started once: its key is there, and tor has made
	// authorized_clients, both the service user's.
	_, _, err = onion.EnsureKey(u.data)
	must(t, err)
	must(t, os.Mkdir(filepath.Join(u.data, "onion", "authorized_clients"), 0o700))
	must(t, filepath.Walk(u.data, func(p string, _ os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		return os.Lchown(p, u.uid, u.uid)
	}))
	u.aliceDir, u.bobDir = t.TempDir(), t.TempDir()
	return u
}

// uidMapped reports whether uid exists in this user namespace.
func uidMapped(uid int) bool {
	b, err := os.ReadFile("/proc/self/uid_map")
	if err != nil {
		return false
	}
	for _, l := range strings.Split(string(b), "\n") {
		f := strings.Fields(l)
		if len(f) != 3 {
			continue
		}
		inside, _ := strconv.Atoi(f[0])
		count, _ := strconv.Atoi(f[2])
		if uid >= inside && uid < inside+count {
			return true
		}
	}
	return false
}

// command is onionchat serving as the service user.
func (u *serviceUser) command() *exec.Cmd {
	cmd := exec.Command(u.bin, "--config", u.cfg, "--data-dir", u.data)
	cmd.Env = append(os.Environ(), "HOME="+u.home)
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: uint32(u.uid), Gid: uint32(u.uid)}}
	return cmd
}

// start starts onionchat as the service user and waits until it serves.
func (u *serviceUser) start(t *testing.T) *Proc {
	t.Helper()
	old := StartTimeout
	StartTimeout = onionStartTimeout
	defer func() { StartTimeout = old }()
	p := StartCmd(t, u.command())
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("onionchat's output:\n%s", p.Output())
		}
	})
	return p
}

// refused runs onionchat as the service user, expecting it to exit
// non-zero before it serves, and returns what it printed. Should it serve
// instead, it is stopped and the test fails.
func (u *serviceUser) refused(t *testing.T) string {
	t.Helper()
	cmd := u.command()
	out, err := cmd.StdoutPipe()
	must(t, err)
	cmd.Stderr = cmd.Stdout
	must(t, cmd.Start())
	defer cmd.Process.Kill()
	lines := make(chan string)
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			lines <- sc.Text()
		}
		io.Copy(io.Discard, out)
		close(lines)
	}()
	var got strings.Builder
	deadline := time.After(onionStartTimeout)
	for {
		select {
		case l, ok := <-lines:
			if !ok {
				cmd.Wait()
				if code := cmd.ProcessState.ExitCode(); code == 0 {
					t.Fatalf("onionchat exited 0 where it should refuse:\n%s", got.String())
				}
				return got.String()
			}
			got.WriteString(l + "\n")
			if servingRe.MatchString(l) {
				t.Fatalf("onionchat serves where it should refuse:\n%s", got.String())
			}
		case <-deadline:
			t.Fatalf("onionchat neither served nor exited within %v:\n%s", onionStartTimeout, got.String())
		}
	}
}

// authorize runs "onionchat auth add NAME" as root (sudo, in the README's
// words) for the service user's data directory, and gives the friend's
// tor the key in its ClientOnionAuthDir.
func (u *serviceUser) authorize(t *testing.T, name, clientDir string) {
	t.Helper()
	out, code := runBinary(t, "auth", "add", name, "--data-dir", u.data)
	if code != 0 {
		t.Fatalf("auth add %s: %s", name, out)
	}
	line := lastLineWith(out, ":descriptor:x25519:")
	file := filepath.Join(clientDir, strings.SplitN(line, ":", 2)[0]+".auth_private")
	must(t, os.WriteFile(file, []byte(line+"\n"), 0o600))
}

func (u *serviceUser) keyFile(name string) string {
	return filepath.Join(u.data, "onion", "authorized_clients", name+".auth")
}

func owner(t *testing.T, path string) (uid, gid uint32, mode os.FileMode) {
	t.Helper()
	fi, err := os.Lstat(path)
	must(t, err)
	st := fi.Sys().(*syscall.Stat_t)
	return st.Uid, st.Gid, fi.Mode()
}

func sorted(s []string) []string { s = append([]string(nil), s...); sort.Strings(s); return s }

var publishedRe = regexp.MustCompile(`Onion service published in (\S+):`)

func publishTime(t *testing.T, p *Proc) time.Duration {
	t.Helper()
	m := publishedRe.FindStringSubmatch(p.Output())
	if m == nil {
		t.Fatalf("no publish time printed:\n%s", p.Output())
	}
	d, err := time.ParseDuration(m[1])
	must(t, err)
	return d
}

// TestOnionFailsClosed runs the real binary as a service user on a
// private Tor network, as the README's systemd unit does, and attacks the
// promises of issue 13: a client key its tor cannot read must stop it
// rather than leave the service open; a client-key change its tor cannot
// reload must stop it rather than serve the old set; a restart must keep
// tor's entry guards; an ephemeral service's key must never be a file.
// Reachability is checked with HTTP GETs of the page through tor clients
// of the network, with and without a key.
func TestOnionFailsClosed(t *testing.T) {
	top := t // the servers outlive the subtests that start them
	net := tortest.Start(t)
	u := newServiceUser(t, net)
	addrOf := func(p *Proc) string { return strings.TrimSuffix(p.URL, "/") + "/" }

	var first *Proc
	t.Run("a key its tor cannot read stops it", func(t *testing.T) {
		u.authorize(t, "alice", u.aliceDir)
		// What "sudo onionchat auth add" left before: root's file, which
		// the service user's tor skipped, leaving the service open.
		alice := u.keyFile("alice")
		must(t, os.Chown(alice, 0, 0))
		out := u.refused(t)
		for _, want := range []string{alice, "cannot read it", fmt.Sprintf("chown %d:%d", u.uid, u.uid)} {
			if !strings.Contains(out, want) {
				t.Errorf("the refusal does not say %q:\n%s", want, out)
			}
		}
		if _, err := os.Stat(filepath.Join(u.runtime, "torrc")); err == nil {
			t.Errorf("tor was set up although a key was unreadable")
		}
	})

	t.Run("auth add as root leaves a file its tor reads", func(t *testing.T) {
		must(t, os.Remove(u.keyFile("alice")))
		os.RemoveAll(u.aliceDir)
		must(t, os.Mkdir(u.aliceDir, 0o700))
		u.authorize(t, "alice", u.aliceDir)
		uid, gid, mode := owner(t, u.keyFile("alice"))
		if uid != uint32(u.uid) || gid != uint32(u.uid) || mode.Perm() != 0o600 {
			t.Fatalf("alice.auth: owner %d:%d mode %v; want %d:%d 0600", uid, gid, mode, u.uid, u.uid)
		}
	})

	var aliceTor, bobTor *tortest.Tor
	t.Run("only key holders reach it", func(t *testing.T) {
		first = u.start(top)
		if !strings.Contains(first.Output(), "Client authorization: on (1 keys)") {
			t.Fatalf("no verified client authorization line:\n%s", first.Output())
		}
		aliceTor = net.StartTor(top, "ClientOnionAuthDir "+u.aliceDir)
		bobTor = net.StartTor(top, "ClientOnionAuthDir "+u.bobDir)
		must(t, aliceTor.WaitBootstrapped(90*time.Second))
		status, body, err := aliceTor.Get(addrOf(first), 120*time.Second)
		if err != nil || status != 200 || !strings.Contains(string(body), "onionchat") {
			t.Fatalf("alice, with her key, cannot fetch the page: %d %v", status, err)
		}
		if status, _, err := net.Client().Get(addrOf(first), 15*time.Second); err == nil {
			t.Fatalf("a tor without a key fetched the page: %d", status)
		}
	})
	if first == nil || t.Failed() {
		return
	}
	guards1 := entryGuards(t, u.runtime)

	var second *Proc
	t.Run("a change its tor cannot reload stops it; the restart applies it", func(t *testing.T) {
		// tor's sandbox is on: a reload would kill it, so the running tor
		// still has the old set. onionchat stops, saying why.
		u.authorize(t, "bob", u.bobDir)
		if _, err := bobTor.Control("SIGNAL RELOAD"); err != nil { // bob's tor reads his new key
			t.Fatal(err)
		}
		if code := first.Wait(t, 30*time.Second); code == 0 || !strings.Contains(first.Output(), "client authorization changed") {
			t.Fatalf("after auth add bob: exit %d, output:\n%s", code, first.Output())
		}
		second = u.start(top)
		if !strings.Contains(second.Output(), "Client authorization: on (2 keys)") {
			t.Fatalf("no verified client authorization line:\n%s", second.Output())
		}
		must(t, bobTor.WaitBootstrapped(90*time.Second))
		if status, _, err := bobTor.Get(addrOf(second), 120*time.Second); err != nil || status != 200 {
			t.Fatalf("bob cannot fetch the page after the restart: %d %v", status, err)
		}
		if status, _, err := aliceTor.Get(addrOf(second), 120*time.Second); err != nil || status != 200 {
			t.Fatalf("alice cannot fetch the page after the restart: %d %v", status, err)
		}
		if status, _, err := net.Client().Get(addrOf(second), 15*time.Second); err == nil {
			t.Fatalf("a tor without a key fetched the page: %d", status)
		}
	})
	if second == nil {
		return
	}

	t.Run("tor's guards survive the restart", func(t *testing.T) {
		// GETINFO lists the same guards (on this small network, every
		// relay is one); the proof is tor's state file, where each guard
		// carries the time it was sampled, set at random: a restart that
		// kept the guards keeps those times.
		guards2 := entryGuards(t, u.runtime)
		t.Logf("entry guards, first start:  %s", strings.Join(guards1, ", "))
		t.Logf("entry guards, second start: %s", strings.Join(guards2, ", "))
		t.Logf("publish time: first start %v, second start (state kept) %v", publishTime(t, first), publishTime(t, second))
		stop := func(p *Proc) ([]string, string) {
			t.Helper()
			p.Signal(syscall.SIGTERM)
			if code := p.Wait(t, 30*time.Second); code != 0 {
				t.Fatalf("exit %d after SIGTERM:\n%s", code, p.Output())
			}
			return guardState(t, u.data)
		}
		// A stop with SIGTERM (systemctl restart, a reboot) saves tor's
		// state; the next start takes its guards and samples none anew.
		state2, written2 := stop(second)
		third := u.start(top)
		state3, written3 := stop(third)
		if written2 == written3 {
			t.Fatalf("the third tor never wrote its state (LastWritten %s, as the second left it): the comparison would prove nothing", written3)
		}
		if len(state2) == 0 || fmt.Sprint(state2) != fmt.Sprint(state3) {
			t.Errorf("tor sampled its guards anew across a restart:\n%v\n%v", state2, state3)
		}
		t.Logf("guards in tor's state file with the same sampled_on before and after a restart: %d of %d", len(state2), len(state3))
		dir := filepath.Join(u.data, "tor")
		if uid, _, mode := owner(t, dir); uid != uint32(u.uid) || mode.Perm() != 0o700 {
			t.Errorf("%s: owner %d mode %v; want the service user's, 0700", dir, uid, mode)
		}
	})

	t.Run("without the sandbox, a key its tor cannot read, added while it runs, stops it", func(t *testing.T) {
		b, err := os.ReadFile(u.cfg)
		must(t, err)
		must(t, os.WriteFile(u.cfg, []byte(strings.Replace(string(b), "[tor]\n", "[tor]\nsandbox = \"off\"\n", 1)), 0o600))
		third := u.start(t)
		if !strings.Contains(third.Output(), "Tor sandbox: off") {
			t.Fatalf("tor's sandbox is on:\n%s", third.Output())
		}
		u.authorize(t, "carol", t.TempDir())
		carol := u.keyFile("carol")
		must(t, os.Chown(carol, 0, 0)) // as sudo left it before
		code := third.Wait(t, 30*time.Second)
		if out := third.Output(); code == 0 || !strings.Contains(out, "client authorization changed") || !strings.Contains(out, carol) {
			t.Fatalf("after an unreadable key was added: exit %d, output:\n%s", code, out)
		}
	})

	t.Run("without the sandbox, a FIFO put among the keys while it runs stops it", func(t *testing.T) {
		// A FIFO is no key tor loads, and reading one blocks until
		// something writes to it: the watcher must refuse it, not hang
		// on it while tor goes on with the old keys.
		if err := os.Remove(u.keyFile("carol")); err != nil && !os.IsNotExist(err) {
			t.Fatal(err)
		}
		b, err := os.ReadFile(u.cfg)
		must(t, err)
		if !strings.Contains(string(b), "sandbox = \"off\"") {
			must(t, os.WriteFile(u.cfg, []byte(strings.Replace(string(b), "[tor]\n", "[tor]\nsandbox = \"off\"\n", 1)), 0o600))
		}
		p := u.start(t)
		if !strings.Contains(p.Output(), "Tor sandbox: off") {
			t.Fatalf("tor's sandbox is on:\n%s", p.Output())
		}
		fifo := u.keyFile("dave")
		must(t, syscall.Mkfifo(fifo, 0o600))
		t.Cleanup(func() { os.Remove(fifo) })
		must(t, os.Chown(fifo, u.uid, u.uid)) // the service user's: opening it to read waits for a writer
		code := p.Wait(t, 30*time.Second)
		if out := p.Output(); code == 0 || !strings.Contains(out, "client authorization changed") || !strings.Contains(out, fifo+" is not a regular file") {
			t.Fatalf("after a FIFO was put among the keys: exit %d, output:\n%s", code, out)
		}
	})

	t.Run("an ephemeral key is never a file", func(t *testing.T) {
		testEphemeralKey(t, net)
	})
}
