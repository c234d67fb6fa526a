package onion

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha3"
	"encoding/base32"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"

	torkey "github.com/cretz/bine/torutil/ed25519"
	"github.com/onionchat/onionchat/internal/securefile"
)

// Layout of the data directory: tor reads the service's keys from
// ServiceDir (its HiddenServiceDir); client-auth public keys live in
// ServiceDir/authorized_clients.
const (
	ServiceDir    = "onion"
	SecretKeyFile = "hs_ed25519_secret_key"
	PublicKeyFile = "hs_ed25519_public_key"
	ClientsDir    = "authorized_clients"
)

var (
	secretHeader = header("== ed25519v1-secret: type0 ==")
	publicHeader = header("== ed25519v1-public: type0 ==")
	b32          = base32.StdEncoding.WithPadding(base32.NoPadding)
)

func header(s string) []byte { h := make([]byte, 32); copy(h, s); return h }

// ErrNoKey is returned by LoadAddress when no onion key is stored.
var ErrNoKey = errors.New("onion: no onion key stored")

// Address returns the v3 onion address of an ed25519 public key, with
// ".onion" (rend-spec-v3 section 6).
func Address(pub ed25519.PublicKey) string {
	const version = 3
	h := sha3.New256()
	h.Write([]byte(".onion checksum"))
	h.Write(pub)
	h.Write([]byte{version})
	sum := h.Sum(nil)
	b := append(append(slices.Clone([]byte(pub)), sum[:2]...), version)
	return strings.ToLower(b32.EncodeToString(b)) + ".onion"
}

// addressKey returns the ed25519 public key that a v3 address stands for.
func addressKey(addr string) (ed25519.PublicKey, error) {
	b, err := b32.DecodeString(strings.ToUpper(strings.TrimSuffix(addr, ".onion")))
	if err != nil || len(b) != 35 || Address(ed25519.PublicKey(b[:32])) != addr {
		return nil, fmt.Errorf("onion: %q is not a v3 onion address", addr)
	}
	return ed25519.PublicKey(b[:32]), nil
}

// EnsureKey makes sure dataDir holds the service's key, generating one if
// none exists, and returns the service directory and the address. The key
// is written by us, whole or not at all (securefile), in the format tor
// reads; tor then uses it without writing a key itself.
func EnsureKey(dataDir string) (dir, addr string, err error) {
	dir = filepath.Join(dataDir, ServiceDir)
	if err := securefile.EnsureDir(dataDir); err != nil {
		return "", "", fmt.Errorf("onion: data directory: %w", err)
	}
	if err := securefile.EnsureDir(dir); err != nil {
		return "", "", fmt.Errorf("onion: service directory: %w", err)
	}
	addr, err = LoadAddress(dataDir)
	if err == nil {
		return dir, addr, nil
	}
	if !errors.Is(err, ErrNoKey) {
		return "", "", err
	}
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return "", "", fmt.Errorf("onion: generate key: %w", err)
	}
	// A public key file left alone by an interrupted first start is
	// replaced; without its secret key it is worth nothing.
	os.Remove(filepath.Join(dir, PublicKeyFile))
	if err := securefile.WriteNew(filepath.Join(dir, SecretKeyFile), secretKey(priv)); err != nil {
		return "", "", fmt.Errorf("onion: %w", err)
	}
	if err := securefile.WriteNew(filepath.Join(dir, PublicKeyFile), append(slices.Clone(publicHeader), pub...)); err != nil {
		return "", "", fmt.Errorf("onion: %w", err)
	}
	return dir, Address(pub), nil
}

// secretKey returns the contents of tor's secret key file for priv: the
// header, then the 64-byte expanded key tor stores (the clamped scalar
// and the nonce prefix, RFC 8032 5.1.5), which bine computes.
func secretKey(priv ed25519.PrivateKey) []byte {
	return append(slices.Clone(secretHeader), torkey.FromCryptoPrivateKey(priv).PrivateKey()...)
}

// LoadAddress returns the address of the key stored in dataDir, checking
// that the secret key file is private and well formed. It does not start
// tor. ErrNoKey means there is none.
func LoadAddress(dataDir string) (string, error) {
	return KeyFileAddress(filepath.Join(dataDir, ServiceDir, SecretKeyFile))
}

// KeyFileAddress returns the address of a secret key file in tor's
// format (hs_ed25519_secret_key, or an Onionbalance front's key moved
// out of a data directory), checking that it is private and well formed.
// ErrNoKey means there is none.
func KeyFileAddress(path string) (string, error) {
	sec, err := securefile.Read(path)
	if errors.Is(err, fs.ErrNotExist) {
		return "", ErrNoKey
	}
	if err != nil {
		return "", fmt.Errorf("onion: %w", err)
	}
	if len(sec) != 96 || !bytes.Equal(sec[:32], secretHeader) {
		return "", fmt.Errorf("onion: %s is not a tor v3 secret key (move it away to make a new address)", path)
	}
	pub := torkey.PrivateKey(sec[32:]).PublicKey()
	return Address(ed25519.PublicKey(pub)), nil
}
