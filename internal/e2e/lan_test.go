package e2e

import (
	"crypto/sha256"
	"crypto/tls"
	"net/url"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"github.com/onionchat/onionchat/internal/tlscert"
	"github.com/onionchat/onionchat/internal/wstest"
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
	a.JoinOK("e2e", "alice")
	b.JoinOK("e2e", "bob")
	a.Expect("join")
	a.Msg("hello bob")
	if f := b.Expect("msg"); f.Str("from") != "alice" || wstest.Body(f) != "hello bob" {
		t.Fatalf("bob got %v", f)
	}
	b.Msg("hello alice")
	if f := a.Expect("msg"); f.Str("from") != "bob" || wstest.Body(f) != "hello alice" {
		t.Fatalf("alice got %v", f)
	}

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
