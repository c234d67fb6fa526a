package tortest

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha1"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"time"
)

// gencertTimeout bounds one run of tor-gencert (a 3072-bit RSA key: about
// a second on an idle core).
const gencertTimeout = 60 * time.Second

// authorityKeys is what a v3 directory authority needs besides its relay
// keys: a v3 identity key, a signing key and the certificate binding them,
// as made by tor-gencert, and the identity's fingerprint (the v3ident of
// its DirAuthority line).
type authorityKeys struct {
	identity, signing, cert []byte
	v3ident                 string
}

var (
	authKeysMu sync.Mutex
	authKeys   []authorityKeys // made once per process: the slow part of Start
)

// authorityKeySets returns n sets of authority keys, making them with
// tor-gencert (in parallel) on first use and reusing them for later
// networks of this process: they name no address or port, so each
// network's DirAuthority lines can pair them with its own.
func authorityKeySets(gencert string, n int) ([]authorityKeys, error) {
	authKeysMu.Lock()
	defer authKeysMu.Unlock()
	if len(authKeys) >= n {
		return authKeys[:n], nil
	}
	sets := make([]authorityKeys, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range sets {
		wg.Add(1)
		go func() {
			defer wg.Done()
			sets[i], errs[i] = makeAuthorityKeys(gencert)
		}()
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			return nil, err
		}
	}
	authKeys = sets
	return sets, nil
}

// makeAuthorityKeys runs tor-gencert (identity key passphrase empty, 12
// months of validity, no address) in a temporary directory and returns
// what it made.
func makeAuthorityKeys(gencert string) (authorityKeys, error) {
	var k authorityKeys
	dir, err := os.MkdirTemp("", "tortest-gencert-")
	if err != nil {
		return k, err
	}
	defer os.RemoveAll(dir)
	ctx, cancel := context.WithTimeout(context.Background(), gencertTimeout)
	defer cancel()
	id, sk, cert := filepath.Join(dir, "id"), filepath.Join(dir, "sk"), filepath.Join(dir, "cert")
	cmd := exec.CommandContext(ctx, gencert, "--create-identity-key", "-m", "12",
		"-i", id, "-s", sk, "-c", cert, "--passphrase-fd", "0")
	cmd.Dir = dir
	cmd.Stdin = strings.NewReader("\n")
	cmd.WaitDelay = 5 * time.Second
	if out, err := cmd.CombinedOutput(); err != nil {
		return k, fmt.Errorf("tor-gencert: %w: %s", err, strings.TrimSpace(string(out)))
	}
	for p, b := range map[string]*[]byte{id: &k.identity, sk: &k.signing, cert: &k.cert} {
		if *b, err = os.ReadFile(p); err != nil {
			return k, fmt.Errorf("tor-gencert output: %w", err)
		}
	}
	for _, l := range strings.Split(string(k.cert), "\n") {
		if f := strings.Fields(l); len(f) == 2 && f[0] == "fingerprint" && isFingerprint(f[1]) {
			k.v3ident = f[1]
		}
	}
	if k.v3ident == "" {
		return k, fmt.Errorf("tor-gencert: no fingerprint line in the certificate")
	}
	return k, nil
}

// write puts the keys in keysDir under the names tor looks for.
func (k authorityKeys) write(keysDir string) error {
	if err := os.MkdirAll(keysDir, 0o700); err != nil {
		return err
	}
	for name, b := range map[string][]byte{
		"authority_identity_key": k.identity,
		"authority_signing_key":  k.signing,
		"authority_certificate":  k.cert,
	} {
		if err := os.WriteFile(filepath.Join(keysDir, name), b, 0o600); err != nil {
			return err
		}
	}
	return nil
}

// makeRelayIdentity writes a new 1024-bit RSA relay identity key to
// keysDir/secret_id_key, where tor loads it instead of creating one, and
// returns its fingerprint: the upper-case hex SHA-1 of the PKCS#1 DER
// public key, as in "tor --list-fingerprint". Creating the key here lets
// DirAuthority lines and the bandwidth file name every relay before any
// tor runs.
func makeRelayIdentity(keysDir string) (string, error) {
	if err := os.MkdirAll(keysDir, 0o700); err != nil {
		return "", err
	}
	k, err := rsa.GenerateKey(rand.Reader, 1024)
	if err != nil {
		return "", fmt.Errorf("relay identity key: %w", err)
	}
	p := pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(k)})
	if err := os.WriteFile(filepath.Join(keysDir, "secret_id_key"), p, 0o600); err != nil {
		return "", fmt.Errorf("relay identity key: %w", err)
	}
	sum := sha1.Sum(x509.MarshalPKCS1PublicKey(&k.PublicKey))
	return strings.ToUpper(hex.EncodeToString(sum[:])), nil
}

func isFingerprint(s string) bool {
	if len(s) != 40 {
		return false
	}
	_, err := hex.DecodeString(s)
	return err == nil
}
