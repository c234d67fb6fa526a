package onion

import (
	"bytes"
	"crypto/ecdh"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha3"
	"crypto/sha512"
	"encoding/base32"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
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
	if err := securefile.WriteNew(filepath.Join(dir, SecretKeyFile), append(slices.Clone(secretHeader), expand(priv)...)); err != nil {
		return "", "", fmt.Errorf("onion: %w", err)
	}
	if err := securefile.WriteNew(filepath.Join(dir, PublicKeyFile), append(slices.Clone(publicHeader), pub...)); err != nil {
		return "", "", fmt.Errorf("onion: %w", err)
	}
	return dir, Address(pub), nil
}

// expand turns an ed25519 private key into the 64-byte expanded form tor
// stores: the clamped scalar, then the nonce prefix (RFC 8032 5.1.5).
func expand(priv ed25519.PrivateKey) []byte {
	h := sha512.Sum512(priv.Seed())
	h[0] &= 248
	h[31] &= 127
	h[31] |= 64
	return h[:]
}

// LoadAddress returns the address of the key stored in dataDir, checking
// that the secret key file is private and well formed. It does not start
// tor. ErrNoKey means there is none.
func LoadAddress(dataDir string) (string, error) {
	dir := filepath.Join(dataDir, ServiceDir)
	sec, err := securefile.Read(filepath.Join(dir, SecretKeyFile))
	if errors.Is(err, fs.ErrNotExist) {
		return "", ErrNoKey
	}
	if err != nil {
		return "", fmt.Errorf("onion: %w", err)
	}
	if len(sec) != 96 || !bytes.Equal(sec[:32], secretHeader) {
		return "", fmt.Errorf("onion: %s is not a tor v3 secret key (move it away to make a new address)", filepath.Join(dir, SecretKeyFile))
	}
	pub := torkey.PrivateKey(sec[32:]).PublicKey()
	return Address(ed25519.PublicKey(pub)), nil
}

// ClientKey is a client-authorization key pair: the service keeps only
// Public (in authorized_clients), the friend's Tor Browser holds Private.
type ClientKey struct {
	Name    string
	Public  string // base32, as in NAME.auth
	Private string // base32, what Tor Browser asks for
}

var clientName = regexp.MustCompile(`^[A-Za-z0-9_-]{1,32}$`)

// AddClient creates an x25519 key pair for a friend called name, stores
// its public half as authorized_clients/NAME.auth (0600) and returns both
// halves. The private half is not stored anywhere.
func AddClient(dataDir, name string) (ClientKey, error) {
	if !clientName.MatchString(name) {
		return ClientKey{}, fmt.Errorf("onion: client name %q: use 1 to 32 letters, digits, '-' or '_'", name)
	}
	if _, _, err := EnsureKey(dataDir); err != nil {
		return ClientKey{}, err
	}
	dir := filepath.Join(dataDir, ServiceDir, ClientsDir)
	if err := securefile.EnsureDir(dir); err != nil {
		return ClientKey{}, fmt.Errorf("onion: %w", err)
	}
	priv, err := ecdh.X25519().GenerateKey(rand.Reader)
	if err != nil {
		return ClientKey{}, fmt.Errorf("onion: generate client key: %w", err)
	}
	k := ClientKey{Name: name, Public: b32.EncodeToString(priv.PublicKey().Bytes()), Private: b32.EncodeToString(priv.Bytes())}
	err = securefile.WriteNew(filepath.Join(dir, name+".auth"), []byte("descriptor:x25519:"+k.Public+"\n"))
	if errors.Is(err, fs.ErrExist) {
		return ClientKey{}, fmt.Errorf("onion: a client called %q exists already; remove it first", name)
	}
	if err != nil {
		return ClientKey{}, fmt.Errorf("onion: %w", err)
	}
	return k, nil
}

// Clients lists the names of the authorized clients.
func Clients(dataDir string) ([]string, error) {
	entries, err := os.ReadDir(filepath.Join(dataDir, ServiceDir, ClientsDir))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("onion: %w", err)
	}
	var names []string
	for _, e := range entries {
		if n, ok := strings.CutSuffix(e.Name(), ".auth"); ok && !e.IsDir() {
			names = append(names, n)
		}
	}
	return names, nil
}

// RemoveClient deletes a client's public key; its holder can no longer
// reach the service once tor reloads its client list.
func RemoveClient(dataDir, name string) error {
	if !clientName.MatchString(name) {
		return fmt.Errorf("onion: client name %q: use 1 to 32 letters, digits, '-' or '_'", name)
	}
	err := os.Remove(filepath.Join(dataDir, ServiceDir, ClientsDir, name+".auth"))
	if errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("onion: no client called %q", name)
	}
	if err != nil {
		return fmt.Errorf("onion: %w", err)
	}
	return nil
}

// ClientAuthLine is what a tor client (not Tor Browser, which asks for the
// key alone) puts in a file of its ClientOnionAuthDir to reach addr.
func ClientAuthLine(addr string, k ClientKey) string {
	return strings.TrimSuffix(addr, ".onion") + ":descriptor:x25519:" + k.Private
}
