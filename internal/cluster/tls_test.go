package cluster

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/onionchat/onionchat/internal/setting"
)

// writePEM writes a PEM block to dir/name, 0600.
func writePEM(t *testing.T, dir, name, typ string, der []byte) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// testCA makes a certificate authority in dir and returns a function that
// issues it a certificate for 127.0.0.1 (server and client use), written
// as name.crt and name.key.
func testCA(t *testing.T, dir, caName string) (caFile string, issue func(name string) (cert, key string)) {
	t.Helper()
	caKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: caName},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}
	caDER, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	ca, _ := x509.ParseCertificate(caDER)
	caFile = writePEM(t, dir, caName+".crt", "CERTIFICATE", caDER)
	serial := int64(2)
	return caFile, func(name string) (string, string) {
		k, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		serial++
		tm := &x509.Certificate{SerialNumber: big.NewInt(serial), Subject: pkix.Name{CommonName: name},
			NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
			IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}, DNSNames: []string{"localhost"},
			KeyUsage:    x509.KeyUsageDigitalSignature,
			ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth}}
		der, err := x509.CreateCertificate(rand.Reader, tm, ca, &k.PublicKey, caKey)
		if err != nil {
			t.Fatal(err)
		}
		kd, _ := x509.MarshalECPrivateKey(k)
		return writePEM(t, dir, name+".crt", "CERTIFICATE", der), writePEM(t, dir, name+".key", "EC PRIVATE KEY", kd)
	}
}

// TestTLSLinks: instances whose certificates come from the owner's CA
// link over mutual TLS (with a password too); an instance with a
// certificate from another CA, or without the password, is never linked.
func TestTLSLinks(t *testing.T) {
	dir := t.TempDir()
	ca, issue := testCA(t, dir, "owner-ca")
	_, strangerIssue := testCA(t, dir, "stranger-ca")
	ports := freePorts(t, 4)
	addr := func(i int) string { return "127.0.0.1:" + strconv.Itoa(ports[i]) }
	opts := func(i int, cert, key string, pw string, peers ...int) Config {
		o := Config{Listen: addr(i), CertFile: cert, KeyFile: key, CAFile: ca, User: "onionchat", Password: pw,
			Heartbeat: testBeat, DeadAfter: testDead}
		for _, p := range peers {
			o.Peers = append(o.Peers, addr(p))
		}
		return o
	}
	c0, k0 := issue("a")
	c1, k1 := issue("b")
	a := startInstance(t, "A", opts(0, c0, k0, "s3/cr@t:", 1, 2, 3), testHub())
	b := startInstance(t, "B", opts(1, c1, k1, "s3/cr@t:", 0), testHub())
	sc, sk := strangerIssue("c")
	stranger := startInstance(t, "C", opts(2, sc, sk, "s3/cr@t:", 0), testHub())
	c3, k3 := issue("d")
	noPassword := startInstance(t, "D", opts(3, c3, k3, "wrong", 0), testHub())
	waitFor(t, "A and B to link over TLS", 20*time.Second, func() bool { return a.n.Peers() == 1 && b.n.Peers() == 1 })
	time.Sleep(2 * testDead) // time enough for the others to be heard, were they linked
	if a.n.Peers() != 1 || stranger.n.Peers() != 0 || noPassword.n.Peers() != 0 {
		t.Fatalf("peers: A %d, stranger %d, wrong password %d", a.n.Peers(), stranger.n.Peers(), noPassword.n.Peers())
	}
}

// TestCheckFailsClosed: links that would leave the machine in clear are
// refused before anything starts, naming the option.
func TestCheckFailsClosed(t *testing.T) {
	for _, tc := range []struct {
		o   Config
		key string
	}{
		{Config{Listen: "192.168.1.5:6222"}, "listen"},
		{Config{Listen: "0.0.0.0:6222"}, "listen"},
		{Config{Listen: "127.0.0.1:6222", Peers: []string{"10.0.0.2:6222"}}, "peers"},
		{Config{Listen: "127.0.0.1:6222", Peers: []string{"pi2.local:6222"}}, "peers"},
		{Config{Listen: "192.168.1.5:6222", CertFile: "c", KeyFile: "k"}, "tls_cert"},
		{Config{Listen: "127.0.0.1:6222"}, "user"},
		{Config{Listen: "127.0.0.1:6222", Peers: []string{"[::1]:6223"}}, "user"},
		{Config{Listen: "127.0.0.1:6222", User: "u"}, "password_file"},
		{Config{URL: "nats://127.0.0.1:4222"}, "user"},
		{Config{}, "listen"},
		{Config{URL: "nats://10.0.0.2:4222"}, "url"},
		{Config{URL: "nats://127.0.0.1:4222", Listen: "127.0.0.1:6222"}, "url"},
	} {
		err := tc.o.check()
		var oe *setting.Error
		if !errors.As(err, &oe) || oe.Key != tc.key {
			t.Errorf("%+v: %v, want an error about %s", tc.o, err, tc.key)
			continue
		}
		if _, err := Start(tc.o, nil); err == nil || !strings.Contains(err.Error(), tc.key) {
			t.Errorf("%+v: Start: %v", tc.o, err)
		}
	}
	for _, o := range []Config{
		{Listen: "127.0.0.1:6222", Peers: []string{"[::1]:6223", "localhost:6224"}, User: "u", Password: "p"},
		{Listen: "192.168.1.5:6222", Peers: []string{"192.168.1.6:6222"}, CertFile: "c", KeyFile: "k", CAFile: "ca", User: "u", Password: "p"},
		{URL: "nats://127.0.0.1:4222", User: "u", Password: "p"},
	} {
		if err := o.check(); err != nil {
			t.Errorf("%+v: %v", o, err)
		}
	}
}

// TestValidate: what an owner may set goes beyond what Start refuses:
// absolute paths, a dead_after of 2s to 10m, a front only with links.
func TestValidate(t *testing.T) {
	creds := Config{Listen: "127.0.0.1:6222", User: "u", PasswordFile: "/etc/onionchat/links.password"}.WithDefaults()
	if err := creds.Validate(); err != nil {
		t.Fatalf("a loopback cluster with credentials: %v", err)
	}
	if err := (Config{}).WithDefaults().Validate(); err != nil {
		t.Fatalf("no cluster: %v", err)
	}
	for _, tc := range []struct {
		change func(*Config)
		key    string
	}{
		{func(c *Config) { c.DeadAfter = time.Second }, "dead_after"},
		{func(c *Config) { c.DeadAfter = 0 }, "dead_after"},
		{func(c *Config) { c.CertFile = "pi.crt" }, "tls_cert"},
		{func(c *Config) { c.PasswordFile = "" }, "password_file"},
		{func(c *Config) { c.Front = "abc.onion" }, "front"},
		{func(c *Config) { c.Listen = ""; c.Front = strings.Repeat("a", 56) + ".onion" }, "front"},
		{func(c *Config) { c.Listen = ""; c.Peers = []string{"127.0.0.1:6223"} }, "peers"},
		{func(c *Config) { c.Listen = "10.0.0.1:6222" }, "listen"},
	} {
		c := creds
		tc.change(&c)
		var e *setting.Error
		if err := c.Validate(); !errors.As(err, &e) || e.Key != tc.key {
			t.Errorf("%+v: %v, want an error about %s", c, err, tc.key)
		}
	}
}
