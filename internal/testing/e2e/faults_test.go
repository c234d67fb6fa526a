package e2e

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"github.com/onionchat/onionchat/internal/app"
	"github.com/onionchat/onionchat/internal/testing/need"
	"github.com/onionchat/onionchat/internal/testing/wstest"
)

// TestSIGTERMDuringBurst: the server is stopped while members are sending
// as fast as the rate allows. Every member gets close 1001, the process
// exits 0, and local mode has written nothing to disk.
func TestSIGTERMDuringBurst(t *testing.T) {
	data := filepath.Join(t.TempDir(), "data")
	cfg := filepath.Join(t.TempDir(), "c.toml")
	os.WriteFile(cfg, []byte("mode = \"local\"\n[hub]\nrate = 1000.0\nburst = 1000\nmax_conns_per_peer = 100\njoin_rate = 1000.0\njoin_burst = 1000\n"), 0o600)
	p := Start(t, "--config", cfg, "--listen", "127.0.0.1:0", "--data-dir", data)
	const n = 20
	cs := make([]*wstest.Client, n)
	for i := range cs {
		cs[i] = wstest.Dial(t, p.URL)
		cs[i].JoinOK("burst", fmt.Sprintf("m%d", i))
	}
	var sent atomic.Int64
	var wg sync.WaitGroup
	codes := make([]int, n)
	for i, c := range cs {
		wg.Add(2)
		go func() { // send until the connection fails
			defer wg.Done()
			for k := 0; ; k++ {
				c.SetWriteDeadline(time.Now().Add(5 * time.Second))
				if c.WriteMessage(websocket.TextMessage, []byte(`{"v":2,"type":"msg","body":"aGVsbG8="}`)) != nil {
					return
				}
				sent.Add(1)
				if k%50 == 49 {
					time.Sleep(10 * time.Millisecond)
				}
			}
		}()
		go func() { // read until the close
			defer wg.Done()
			codes[i] = -2
			for {
				c.SetReadDeadline(time.Now().Add(15 * time.Second))
				if _, _, err := c.ReadMessage(); err != nil {
					var ce *websocket.CloseError
					if errors.As(err, &ce) {
						codes[i] = ce.Code
					} else {
						codes[i] = -1
					}
					return
				}
			}
		}()
	}
	for deadline := time.Now().Add(10 * time.Second); sent.Load() < 2000 && time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
	}
	if err := p.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if code := p.Wait(t, 20*time.Second); code != 0 {
		t.Fatalf("exit code %d after SIGTERM, want 0:\n%s", code, p.Output())
	}
	wg.Wait()
	for i, c := range codes {
		if c != websocket.CloseGoingAway {
			t.Errorf("member %d: close %d, want 1001", i, c)
		}
	}
	if names := dirNames(data); len(names) != 1 || names[0] != app.LocalIDFile {
		t.Errorf("local mode's data directory holds %v, want only its server id (%s)", names, app.LocalIDFile)
	}
	t.Logf("%d messages were sent before and during the shutdown", sent.Load())
}

// TestLocalServerIDPerInstall: local mode makes a random server id once
// per data directory (0600, beside where keys would be) and keeps it
// across restarts, so two installs never share the key-derivation salt;
// a damaged id file stops it with an error that names the file.
func TestLocalServerIDPerInstall(t *testing.T) {
	ids := map[string]string{}
	for _, install := range []string{"a", "b"} {
		data := filepath.Join(t.TempDir(), "data")
		for start := range 2 {
			p := Start(t, "--mode", "local", "--listen", "127.0.0.1:0", "--data-dir", data)
			must(t, p.Signal(syscall.SIGTERM))
			if code := p.Wait(t, 15*time.Second); code != 0 {
				t.Fatalf("exit %d:\n%s", code, p.Output())
			}
			f := filepath.Join(data, app.LocalIDFile)
			fi, err := os.Stat(f)
			if err != nil || fi.Mode().Perm() != 0o600 {
				t.Fatalf("install %s: %s: %v, mode %v; want a 0600 file", install, f, err, fi.Mode())
			}
			b, _ := os.ReadFile(f)
			if start == 1 && string(b) != ids[install] {
				t.Fatalf("install %s: server id changed across a restart: %q, then %q", install, ids[install], b)
			}
			ids[install] = string(b)
			if names := dirNames(data); len(names) != 1 {
				t.Fatalf("install %s: data directory holds %v", install, names)
			}
		}
		if len(strings.TrimSpace(ids[install])) != 22 {
			t.Fatalf("install %s: server id %q, want 22 characters of base64url", install, ids[install])
		}
	}
	if ids["a"] == ids["b"] {
		t.Fatalf("two installs have the same server id %q", ids["a"])
	}
	data := filepath.Join(t.TempDir(), "data")
	must(t, os.Mkdir(data, 0o700))
	must(t, os.WriteFile(filepath.Join(data, app.LocalIDFile), []byte("not an id\n"), 0o600))
	out, code := runBinary(t, "--mode", "local", "--listen", "127.0.0.1:0", "--data-dir", data)
	if code == 0 || !strings.Contains(out, filepath.Join(data, app.LocalIDFile)) || !strings.Contains(out, "remove it") {
		t.Fatalf("a damaged id file: exit %d, output:\n%s\nwant a non-zero exit naming the file", code, out)
	}
}

func dirNames(dir string) []string {
	entries, _ := os.ReadDir(dir)
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	return names
}

// TestDataDirWithWrongPermissions: a data directory others can read, or a
// key file others can read, stops onionchat with a clear error that says
// how to fix it, before anything is written.
func TestDataDirWithWrongPermissions(t *testing.T) {
	data := filepath.Join(t.TempDir(), "data")
	os.Mkdir(data, 0o755)
	out, code := runBinary(t, "--mode", "lan", "--listen", "127.0.0.1:0", "--data-dir", data)
	if code == 0 || !strings.Contains(out, "chmod 700 "+data) {
		t.Fatalf("exit %d, output:\n%s\nwant a non-zero exit and a chmod 700 hint", code, out)
	}
	if entries, _ := os.ReadDir(data); len(entries) != 0 {
		t.Fatalf("%d files written into a directory that was refused", len(entries))
	}

	// A key file others can read is refused too.
	os.Chmod(data, 0o700)
	if out, code := runBinary(t, "auth", "add", "alice", "--data-dir", data); code != 0 {
		t.Fatalf("auth add: %d\n%s", code, out)
	}
	key := filepath.Join(data, "onion", "hs_ed25519_secret_key")
	os.Chmod(key, 0o644)
	out, code = runBinary(t, "address", "--data-dir", data)
	if code == 0 || !strings.Contains(out, "chmod 600 "+key) {
		t.Fatalf("exit %d, output:\n%s\nwant a non-zero exit and a chmod 600 hint", code, out)
	}
}

// TestFullDiskLeavesNoPartialKey: with the data directory on a full
// filesystem (a tiny tmpfs in a mount namespace of the test's own), the
// certificate and the onion key cannot be written: onionchat says so and
// leaves no partial file behind, so a later start on a freed disk creates
// whole ones.
func TestFullDiskLeavesNoPartialKey(t *testing.T) {
	unshare := need.Tool(t, "unshare")
	if err := exec.Command(unshare, "-rm", "true").Run(); err != nil {
		need.Missing(t, "user and mount namespaces (unshare -rm): %v", err)
	}
	bin := Binary(t)
	mnt := t.TempDir()
	// Inside the namespace: a 16 KiB tmpfs, filled to the last byte, with
	// the data directory on it; try LAN mode (certificate) and auth add
	// (onion key); list what is left.
	script := `set -u
mount -t tmpfs -o size=16k,mode=0700 tmpfs "$1" || exit 90
mkdir -m 0700 "$1/data"
dd if=/dev/zero of="$1/fill" bs=1k count=64 2>/dev/null
echo "== lan"; "$2" --mode lan --listen 127.0.0.1:0 --data-dir "$1/data"; echo "exit=$?"
echo "== key"; "$2" auth add alice --data-dir "$1/data"; echo "exit=$?"
echo "== left"; find "$1/data" -type f
rm "$1/fill"
echo "== freed"; "$2" auth add alice --data-dir "$1/data" >/dev/null; echo "exit=$?"
"$2" address --data-dir "$1/data"; echo "exit=$?"
`
	out, err := exec.Command(unshare, "-rm", "sh", "-c", script, "sh", mnt, bin).CombinedOutput()
	if err != nil {
		t.Fatalf("namespace script: %v\n%s", err, out)
	}
	s := string(out)
	if strings.Contains(s, "exit=90") {
		need.Missing(t, "tmpfs mounts in a user namespace:\n%s", s)
	}
	lan := section(s, "== lan", "== key")
	key := section(s, "== key", "== left")
	left := section(s, "== left", "== freed")
	freed := section(s, "== freed", "")
	for name, sec := range map[string]string{"certificate": lan, "onion key": key} {
		if !strings.Contains(sec, "no space left on device") || strings.Contains(sec, "exit=0") {
			t.Errorf("%s on a full disk:\n%s\nwant a non-zero exit that says the disk is full", name, sec)
		}
	}
	if strings.TrimSpace(left) != "" {
		t.Errorf("files left on the full disk:\n%s", left)
	}
	if strings.Count(freed, "exit=0") != 2 || !strings.Contains(freed, ".onion/") {
		t.Errorf("after freeing space, no whole key was made:\n%s", freed)
	}
}

func section(s, from, to string) string {
	i := strings.Index(s, from)
	if i < 0 {
		return ""
	}
	s = s[i+len(from):]
	if to != "" {
		if j := strings.Index(s, to); j >= 0 {
			s = s[:j]
		}
	}
	return s
}

// runBinary runs onionchat to completion (bounded) and returns its output
// and exit code.
func runBinary(t *testing.T, args ...string) (string, int) {
	t.Helper()
	cmd := exec.Command(Binary(t), args...)
	cmd.Env = append(os.Environ(), "HOME="+t.TempDir())
	done := make(chan struct{})
	var out []byte
	var err error
	go func() { out, err = cmd.CombinedOutput(); close(done) }()
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		cmd.Process.Kill()
		<-done
		t.Fatalf("onionchat %v did not finish:\n%s", args, out)
	}
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		return string(out), ee.ExitCode()
	}
	if err != nil {
		t.Fatal(err)
	}
	return string(out), 0
}
