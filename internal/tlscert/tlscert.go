// Package tlscert provides the certificate of LAN mode: a self-signed ECDSA
// P-256 certificate generated once into the data directory and reused, or
// a certificate and key the owner supplies. It owns nothing else on disk.
package tlscert

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/onionchat/onionchat/internal/securefile"
)

// File names inside the data directory.
const (
	CertFile = "lan-cert.pem"
	KeyFile  = "lan-key.pem"
)

// Validity of a generated certificate.
const Validity = 5 * 365 * 24 * time.Hour

// Cert is a loaded certificate.
type Cert struct {
	TLS tls.Certificate
	// Fingerprint is the SHA-256 of the certificate, as browsers show it
	// ("AB:CD:…"), for friends to compare with their browser's warning.
	Fingerprint string
	// Created is true when LoadOrCreate generated the certificate now.
	Created bool
	// Names lists the certificate's DNS names and IP addresses.
	Names []string
}

// ID is a stable identifier of the certificate's public key, suitable as
// the hub's server ID.
func (c *Cert) ID() string {
	sum := sha256.Sum256(c.TLS.Leaf.RawSubjectPublicKeyInfo)
	return "lan:" + hex.EncodeToString(sum[:16])
}

// LoadOrCreate loads dir's certificate, or generates one for names plus
// localhost, the machine's host name and its interface addresses. A lone
// certificate or key (left by a crash between the two writes) is replaced.
func LoadOrCreate(dir string, names []string) (*Cert, error) {
	if err := securefile.EnsureDir(dir); err != nil {
		return nil, fmt.Errorf("tls: data directory: %w", err)
	}
	certPath, keyPath := filepath.Join(dir, CertFile), filepath.Join(dir, KeyFile)
	_, cerr := os.Stat(certPath)
	_, kerr := os.Stat(keyPath)
	switch {
	case cerr == nil && kerr == nil:
		return load(certPath, keyPath, false)
	case errors.Is(cerr, fs.ErrNotExist) != errors.Is(kerr, fs.ErrNotExist):
		// One of the two survived an interrupted first start; nobody can
		// have trusted a certificate whose key or body is missing.
		if err := removeMissingPair(certPath, keyPath); err != nil {
			return nil, err
		}
	case !errors.Is(cerr, fs.ErrNotExist):
		return nil, fmt.Errorf("tls: %w", cerr)
	case !errors.Is(kerr, fs.ErrNotExist):
		return nil, fmt.Errorf("tls: %w", kerr)
	}
	certPEM, keyPEM, err := generate(Names(names), time.Now())
	if err != nil {
		return nil, err
	}
	if err := securefile.WriteNew(keyPath, keyPEM); err != nil {
		return nil, fmt.Errorf("tls: %w", err)
	}
	if err := securefile.WriteNew(certPath, certPEM); err != nil {
		os.Remove(keyPath)
		return nil, fmt.Errorf("tls: %w", err)
	}
	return load(certPath, keyPath, true)
}

func removeMissingPair(certPath, keyPath string) error {
	for _, p := range []string{certPath, keyPath} {
		if err := os.Remove(p); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("tls: remove incomplete %s: %w", p, err)
		}
	}
	return nil
}

// Load loads a certificate and key supplied by the owner.
func Load(certPath, keyPath string) (*Cert, error) { return load(certPath, keyPath, false) }

func load(certPath, keyPath string, created bool) (*Cert, error) {
	certPEM, err := os.ReadFile(certPath)
	if err != nil {
		return nil, fmt.Errorf("tls: %w", err)
	}
	keyPEM, err := securefile.Read(keyPath)
	if err != nil {
		return nil, fmt.Errorf("tls: %w", err)
	}
	c, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		return nil, fmt.Errorf("tls: %s and %s: %w", certPath, keyPath, err)
	}
	if c.Leaf == nil {
		if c.Leaf, err = x509.ParseCertificate(c.Certificate[0]); err != nil {
			return nil, fmt.Errorf("tls: %s: %w", certPath, err)
		}
	}
	sum := sha256.Sum256(c.Certificate[0])
	names := slices.Clone(c.Leaf.DNSNames)
	for _, ip := range c.Leaf.IPAddresses {
		names = append(names, ip.String())
	}
	return &Cert{TLS: c, Fingerprint: Fingerprint(sum[:]), Created: created, Names: names}, nil
}

// Fingerprint formats a digest as upper-case hex pairs joined by colons.
func Fingerprint(sum []byte) string {
	h := strings.ToUpper(hex.EncodeToString(sum))
	var b strings.Builder
	for i := 0; i < len(h); i += 2 {
		if i > 0 {
			b.WriteByte(':')
		}
		b.WriteString(h[i : i+2])
	}
	return b.String()
}

// Names returns the names a generated certificate covers: extra, then
// localhost, the host name (and host.local), and every interface address.
func Names(extra []string) []string {
	names := append([]string(nil), extra...)
	names = append(names, "localhost", "127.0.0.1", "::1")
	if h, err := os.Hostname(); err == nil && h != "" {
		names = append(names, h)
		if !strings.Contains(h, ".") {
			names = append(names, h+".local")
		}
	}
	if addrs, err := net.InterfaceAddrs(); err == nil {
		for _, a := range addrs {
			if ipn, ok := a.(*net.IPNet); ok && !ipn.IP.IsLinkLocalUnicast() {
				names = append(names, ipn.IP.String())
			}
		}
	}
	slices.Sort(names)
	return slices.Compact(names)
}

// New returns a fresh self-signed certificate for names (DNS names or IP
// addresses), made as LoadOrCreate makes LAN mode's but kept in memory
// only: for a server that keeps none, such as a test's TLS proxy. Its
// serial is random, as every generated one's: browsers (Firefox) refuse a
// second certificate with the same issuer and serial.
func New(names []string) (tls.Certificate, error) {
	certPEM, keyPEM, err := generate(names, time.Now())
	if err != nil {
		return tls.Certificate{}, err
	}
	return tls.X509KeyPair(certPEM, keyPEM)
}

func generate(names []string, now time.Time) (certPEM, keyPEM []byte, err error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, fmt.Errorf("tls: generate key: %w", err)
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		return nil, nil, fmt.Errorf("tls: serial: %w", err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: "onionchat"},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(Validity),
		KeyUsage:              x509.KeyUsageDigitalSignature,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
	}
	for _, n := range names {
		if ip := net.ParseIP(n); ip != nil {
			tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
		} else {
			tmpl.DNSNames = append(tmpl.DNSNames, n)
		}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, nil, fmt.Errorf("tls: create certificate: %w", err)
	}
	kder, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, nil, fmt.Errorf("tls: encode key: %w", err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kder}), nil
}

// Config returns a server TLS configuration for c: TLS 1.2 or later with
// forward-secret AEAD suites only.
func Config(c *Cert) *tls.Config {
	return &tls.Config{
		Certificates: []tls.Certificate{c.TLS},
		MinVersion:   tls.VersionTLS12,
		CipherSuites: []uint16{
			tls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
			tls.TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
			tls.TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305,
			tls.TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
			tls.TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
			tls.TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305,
		},
	}
}
