package tlscert

import (
	"crypto/tls"
	"crypto/x509"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func mode(t *testing.T, p string) os.FileMode {
	t.Helper()
	fi, err := os.Stat(p)
	if err != nil {
		t.Fatal(err)
	}
	return fi.Mode().Perm()
}

func TestCreatedOnceThenReused(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data")
	c1, err := LoadOrCreate(dir, []string{"chat.lan", "192.0.2.7"})
	if err != nil {
		t.Fatal(err)
	}
	if !c1.Created {
		t.Fatal("first start did not create a certificate")
	}
	if m := mode(t, dir); m != 0o700 {
		t.Errorf("data directory mode %04o, want 0700", m)
	}
	for _, f := range []string{CertFile, KeyFile} {
		if m := mode(t, filepath.Join(dir, f)); m != 0o600 {
			t.Errorf("%s mode %04o, want 0600", f, m)
		}
	}
	leaf := c1.TLS.Leaf
	if leaf.PublicKeyAlgorithm != x509.ECDSA || leaf.Subject.CommonName != "onionchat" {
		t.Errorf("certificate: %v %v", leaf.PublicKeyAlgorithm, leaf.Subject)
	}
	if err := leaf.VerifyHostname("chat.lan"); err != nil {
		t.Error(err)
	}
	for _, ip := range []string{"192.0.2.7", "127.0.0.1"} {
		if err := leaf.VerifyHostname(ip); err != nil {
			t.Error(err)
		}
	}
	if len(c1.Fingerprint) != 32*3-1 || strings.ToUpper(c1.Fingerprint) != c1.Fingerprint {
		t.Errorf("fingerprint %q", c1.Fingerprint)
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 2 {
		t.Errorf("data directory holds %d files, want exactly the certificate and key", len(entries))
	}

	c2, err := LoadOrCreate(dir, []string{"other.name"})
	if err != nil {
		t.Fatal(err)
	}
	if c2.Created || c2.Fingerprint != c1.Fingerprint || c2.ID() != c1.ID() {
		t.Fatalf("restart made a new certificate: %s, want %s", c2.Fingerprint, c1.Fingerprint)
	}
}

func TestServesTLS(t *testing.T) {
	c, err := LoadOrCreate(t.TempDir()+"/d", nil)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := tls.Listen("tcp", "127.0.0.1:0", Config(c))
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		conn, err := ln.Accept()
		if err == nil {
			conn.(*tls.Conn).Handshake()
			conn.Close()
		}
	}()
	pool := x509.NewCertPool()
	pool.AddCert(c.TLS.Leaf)
	conn, err := tls.Dial("tcp", ln.Addr().String(), &tls.Config{RootCAs: pool, ServerName: "127.0.0.1"})
	if err != nil {
		t.Fatalf("a client that pins the certificate cannot connect: %v", err)
	}
	conn.Close()
}

func TestRefusesOpenDataDir(t *testing.T) {
	dir := t.TempDir()
	os.Chmod(dir, 0o755)
	_, err := LoadOrCreate(dir, nil)
	if err == nil || !strings.Contains(err.Error(), "chmod 700") {
		t.Fatalf("got %v, want a refusal that says to chmod 700", err)
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 0 {
		t.Fatalf("left %d files behind", len(entries))
	}
}

func TestRefusesReadableKey(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "d")
	if _, err := LoadOrCreate(dir, nil); err != nil {
		t.Fatal(err)
	}
	os.Chmod(filepath.Join(dir, KeyFile), 0o644)
	if _, err := LoadOrCreate(dir, nil); err == nil || !strings.Contains(err.Error(), "chmod 600") {
		t.Fatalf("got %v, want a refusal that says to chmod 600", err)
	}
}

func TestLonePartReplaced(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "d")
	c1, err := LoadOrCreate(dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	os.Remove(filepath.Join(dir, CertFile)) // as if the first start died between the writes
	c2, err := LoadOrCreate(dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	if !c2.Created || c2.Fingerprint == c1.Fingerprint {
		t.Fatal("a lone key was not replaced by a new pair")
	}
}

func TestUnwritableDirLeavesNothing(t *testing.T) {
	if os.Geteuid() == 0 {
		// root writes anywhere; use a file where the directory should be.
		base := t.TempDir()
		p := filepath.Join(base, "data")
		os.WriteFile(p, nil, 0o600)
		if _, err := LoadOrCreate(p, nil); err == nil || !strings.Contains(err.Error(), "not a directory") {
			t.Fatalf("got %v", err)
		}
		return
	}
	dir := t.TempDir()
	os.Chmod(dir, 0o500)
	defer os.Chmod(dir, 0o700)
	if _, err := LoadOrCreate(dir, nil); err == nil {
		t.Fatal("no error writing into a read-only directory")
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 0 {
		t.Fatalf("left %d files behind", len(entries))
	}
}

// New's certificates are for the names given, and no two share a serial
// (Firefox refuses a second certificate with the same issuer and serial).
func TestNewInMemory(t *testing.T) {
	a, err := New([]string{"127.0.0.1", "chat.lan"})
	if err != nil {
		t.Fatal(err)
	}
	b, err := New([]string{"127.0.0.1"})
	if err != nil {
		t.Fatal(err)
	}
	if err := a.Leaf.VerifyHostname("127.0.0.1"); err != nil {
		t.Error(err)
	}
	if err := a.Leaf.VerifyHostname("chat.lan"); err != nil {
		t.Error(err)
	}
	if a.Leaf.SerialNumber.Cmp(b.Leaf.SerialNumber) == 0 {
		t.Errorf("two certificates with serial %v", a.Leaf.SerialNumber)
	}
}
