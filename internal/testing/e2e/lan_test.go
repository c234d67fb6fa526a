package e2e

import (
	"crypto/sha256"
	"crypto/tls"
	"errors"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"github.com/onionchat/onionchat/internal/testing/wstest"
	"github.com/onionchat/onionchat/internal/tlscert"
)

// TestLANBinaryChatAndSIGTERM runs the real binary in LAN mode: two
// clients chat over TLS, then SIGTERM closes them with 1001 and the process
// exits 0, having written nothing but its certificate.
func TestLANBinaryChatAndSIGTERM(t *testing.T) {
	data := filepath.Join(t.TempDir(), "data")
	p := Start(t, "--mode", "lan", "--listen", "127.0.0.1:0", "--data-dir", data)

	// The certificate served is the one whose fingerprint was printed.
	u, _ := url.Parse(p.URL)
	conn, err := tls.Dial("tcp", u.Host, &tls.Config{InsecureSkipVerify: true})
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(conn.ConnectionState().PeerCertificates[0].Raw)
	conn.Close()
	if got := tlscert.Fingerprint(sum[:]); got != p.Fingerprint {
		t.Fatalf("served certificate %s, printed %q", got, p.Fingerprint)
	}

	a := wstest.Dial(t, p.URL)
	b := wstest.Dial(t, p.URL)
	wstest.Pair(a, b, "e2e")
	a.Says(b, "alice", "hello bob")
	b.Says(a, "bob", "hello alice")

	if err := p.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	for _, c := range []*wstest.Client{a, b} {
		c.ExpectError("shutting_down")
		if code := c.ExpectClose(); code != websocket.CloseGoingAway {
			t.Errorf("close code %d, want 1001", code)
		}
	}
	if code := p.Wait(t, 15*time.Second); code != 0 {
		t.Fatalf("exit code %d, want 0:\n%s", code, p.Output())
	}
	// Nothing the process printed names a member, a room, a message or a
	// client's address (port).
	_, clientPort, _ := strings.Cut(a.LocalAddr().String(), ":")
	for _, secret := range []string{"alice", "bob", "e2e", "hello", ":" + clientPort} {
		if strings.Contains(p.Output(), secret) {
			t.Errorf("the server's output contains %q:\n%s", secret, p.Output())
		}
	}
	entries, _ := os.ReadDir(data)
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	if len(names) != 2 || names[0] != tlscert.CertFile || names[1] != tlscert.KeyFile {
		t.Fatalf("data directory holds %v, want only the certificate and its key", names)
	}
}

// TestLANCertificateReusedAcrossRestarts checks that a restart serves the
// same certificate, so friends accept its warning once.
func TestLANCertificateReusedAcrossRestarts(t *testing.T) {
	data := filepath.Join(t.TempDir(), "data")
	p1 := Start(t, "--mode", "lan", "--listen", "127.0.0.1:0", "--data-dir", data)
	fp := p1.Fingerprint
	p1.Signal(syscall.SIGTERM)
	p1.Wait(t, 15*time.Second)
	p2 := Start(t, "--mode", "lan", "--listen", "127.0.0.1:0", "--data-dir", data)
	if fp == "" || p2.Fingerprint != fp {
		t.Fatalf("fingerprint changed across restart: %q then %q", fp, p2.Fingerprint)
	}
}

// TestMissingTorOnPATH: onion mode on a machine without tor says how to
// install it and exits non-zero, having written nothing.
func TestMissingTorOnPATH(t *testing.T) {
	data := filepath.Join(t.TempDir(), "data")
	cmd := exec.Command(Binary(t), "--data-dir", data)
	cmd.Env = []string{"PATH=" + t.TempDir(), "HOME=" + t.TempDir()}
	out, err := cmd.CombinedOutput()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() == 0 {
		t.Fatalf("exit: %v, want a non-zero exit code\n%s", err, out)
	}
	if !strings.Contains(string(out), "tor not found") || !strings.Contains(string(out), "sudo apt-get install tor") {
		t.Fatalf("output does not say how to install tor:\n%s", out)
	}
	if _, err := os.Stat(data); err == nil {
		t.Fatal("the data directory was created although nothing could start")
	}
}
