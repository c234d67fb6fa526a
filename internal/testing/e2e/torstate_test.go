package e2e

import (
	"bytes"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
	"unsafe"

	"github.com/onionchat/onionchat/internal/testing/tortest"
)

// entryGuards asks onionchat's running tor (runtime is onionchat's
// runtime directory) for its entry guards, in tor's order, without their
// status.
func entryGuards(t *testing.T, runtime string) []string {
	t.Helper()
	kvs, err := appTor(t, runtime).GetInfo("entry-guards")
	if err != nil || len(kvs) == 0 {
		t.Fatalf("GETINFO entry-guards: %v", err)
	}
	var guards []string
	for _, l := range strings.Split(kvs[0].Val, "\n") {
		if f := strings.Fields(l); len(f) > 0 {
			guards = append(guards, f[0])
		}
	}
	return guards
}

// guardState returns the guards of tor's state file in onionchat's data
// directory, each as its relay and the time tor sampled it (tor picks
// that time at random when it samples a guard, so a guard sampled anew has
// another): "rsa_id=… sampled_on=…", sorted; and when tor wrote the file
// (LastWritten: tor writes it as it starts and as it stops).
func guardState(t *testing.T, data string) (guards []string, written string) {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(data, "tor", "state"))
	if err != nil {
		t.Fatalf("tor's state is not in the data directory: %v", err)
	}
	for _, l := range strings.Split(string(b), "\n") {
		if w, ok := strings.CutPrefix(l, "LastWritten "); ok {
			written = w
		}
		if !strings.HasPrefix(l, "Guard ") {
			continue
		}
		var id, sampled string
		for _, f := range strings.Fields(l) {
			if strings.HasPrefix(f, "rsa_id=") {
				id = f
			}
			if strings.HasPrefix(f, "sampled_on=") {
				sampled = f
			}
		}
		guards = append(guards, id+" "+sampled)
	}
	sort.Strings(guards)
	return guards, written
}

// secretHeader starts every tor ed25519 secret key file.
var secretHeader = []byte("== ed25519v1-secret: type0 ==")

// keyWatch records, with inotify, every entry created in a directory tree
// whose name is tor's secret key file's, and what it was when it appeared.
type keyWatch struct {
	fd   int
	root string
	mu   sync.Mutex
	wds  map[int]string
	seen []string // "path: regular file" and the like
	stop chan struct{}
	done chan struct{}
}

func watchKeys(t *testing.T, root string) *keyWatch {
	t.Helper()
	fd, err := syscall.InotifyInit1(syscall.IN_CLOEXEC | syscall.IN_NONBLOCK)
	if err != nil {
		t.Fatalf("inotify: %v", err)
	}
	w := &keyWatch{fd: fd, root: root, wds: map[int]string{}, stop: make(chan struct{}), done: make(chan struct{})}
	w.add(root)
	go w.run()
	t.Cleanup(w.close)
	return w
}

// add watches dir and looks at what is in it already (what appeared
// before the watch did).
func (w *keyWatch) add(dir string) {
	wd, err := syscall.InotifyAddWatch(w.fd, dir, syscall.IN_CREATE|syscall.IN_MOVED_TO|syscall.IN_ONLYDIR)
	if err != nil {
		return
	}
	w.mu.Lock()
	w.wds[wd] = dir
	w.mu.Unlock()
	entries, _ := os.ReadDir(dir)
	for _, e := range entries {
		w.look(filepath.Join(dir, e.Name()))
	}
}

func (w *keyWatch) look(path string) {
	fi, err := os.Lstat(path)
	switch {
	case err != nil:
		return
	case fi.IsDir():
		w.add(path)
	case strings.HasPrefix(filepath.Base(path), "hs_ed25519_secret_key"):
		kind := "regular file"
		if fi.Mode()&os.ModeNamedPipe != 0 {
			kind = "pipe"
		} else if !fi.Mode().IsRegular() {
			kind = fi.Mode().Type().String()
		}
		w.mu.Lock()
		w.seen = append(w.seen, path+": "+kind)
		w.mu.Unlock()
	}
}

func (w *keyWatch) run() {
	defer close(w.done)
	buf := make([]byte, 64<<10)
	for {
		n, err := syscall.Read(w.fd, buf)
		if err != nil || n <= 0 {
			select {
			case <-w.stop:
				return
			case <-time.After(time.Millisecond):
			}
			continue
		}
		for off := 0; off+syscall.SizeofInotifyEvent <= n; {
			ev := (*syscall.InotifyEvent)(unsafe.Pointer(&buf[off]))
			name := string(bytes.TrimRight(buf[off+syscall.SizeofInotifyEvent:off+syscall.SizeofInotifyEvent+int(ev.Len)], "\x00"))
			off += syscall.SizeofInotifyEvent + int(ev.Len)
			w.mu.Lock()
			dir := w.wds[int(ev.Wd)]
			w.mu.Unlock()
			if dir != "" && name != "" {
				w.look(filepath.Join(dir, name))
			}
		}
	}
}

func (w *keyWatch) close() {
	select {
	case <-w.stop:
		return
	default:
	}
	close(w.stop)
	<-w.done
	syscall.Close(w.fd)
}

// Seen returns what was recorded so far.
func (w *keyWatch) Seen() []string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return append([]string(nil), w.seen...)
}

// secretKeyFiles lists the regular files under root that hold a tor
// secret key.
func secretKeyFiles(root string) []string {
	var found []string
	filepath.Walk(root, func(path string, fi os.FileInfo, err error) error {
		if err != nil || !fi.Mode().IsRegular() || fi.Size() > 1<<20 {
			return nil
		}
		if b, err := os.ReadFile(path); err == nil && bytes.HasPrefix(b, secretHeader) {
			found = append(found, path)
		}
		return nil
	})
	return found
}

// testEphemeralKey: an ephemeral service's secret key reaches tor
// through a pipe; no file holds it at any moment, the pipe is gone once
// tor has read it, and the address works.
func testEphemeralKey(t *testing.T, n *tortest.Network) {
	data := filepath.Join(t.TempDir(), "data")
	runtime := shortDir(t)
	w := watchKeys(t, runtime)
	p := startOnion(t, "--config", onionConfig(t, n, runtime, ""), "--data-dir", data, "--ephemeral")
	if !strings.Contains(p.Output(), "never touched the disk") {
		t.Errorf("the output does not say where the key is:\n%s", p.Output())
	}
	if status, _, err := n.Get(strings.TrimSuffix(p.URL, "/")+"/", 120*time.Second); err != nil || status != 200 {
		t.Fatalf("the ephemeral service is unreachable: %d %v", status, err)
	}
	if _, err := os.Lstat(filepath.Join(runtime, "ephemeral-onion", "hs_ed25519_secret_key")); err == nil {
		t.Errorf("the key's pipe is still there once tor has read it")
	}
	for _, dir := range []string{runtime, data} {
		if f := secretKeyFiles(dir); len(f) > 0 {
			t.Errorf("secret key files while serving: %v", f)
		}
	}
	p.Signal(syscall.SIGTERM)
	if code := p.Wait(t, 30*time.Second); code != 0 {
		t.Fatalf("exit %d:\n%s", code, p.Output())
	}
	w.close()
	seen := w.Seen()
	if len(seen) == 0 {
		t.Fatalf("the watch never saw the key's name under %s: it proves nothing", runtime)
	}
	for _, s := range seen {
		if !strings.HasSuffix(s, ": pipe") {
			t.Errorf("the key was a file: %s", s)
		}
	}
	t.Logf("key paths seen while tor started: %v", seen)
	if _, err := os.Stat(filepath.Join(data, "tor", "state")); err != nil {
		t.Errorf("ephemeral mode kept no tor state: %v", err)
	}
}
