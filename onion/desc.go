package onion

import (
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"crypto/ed25519"
	"crypto/sha3"
	"crypto/subtle"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// Descriptor layers (rend-spec-v3 section 2.5): the first is encrypted
// with what anyone who knows the address can compute; the second with the
// same plus, under client authorization, a descriptor cookie that only key
// holders can recover.
const (
	outerLayer = "hsdir-superencrypted-data"
	innerLayer = "hsdir-encrypted-data"
)

// descriptorOpen reports whether the v3 descriptor desc (as tor's GETINFO
// hs/service/desc/id/ gives it) of the service with public key pub lets
// anyone who knows the address read its introduction points, that is
// whether client authorization is off in the tor that built it. It decrypts
// the outer layer as every client does, then tries the inner layer without
// a descriptor cookie: the inner layer's MAC checks out without a cookie
// exactly when client authorization is off. An error means the outer layer
// itself could not be read, so nothing is known.
func descriptorOpen(desc string, pub ed25519.PublicKey) (open bool, err error) {
	cert, err := pemBlock(desc, "descriptor-signing-key-cert", "ED25519 CERT")
	if err != nil {
		return false, err
	}
	blinded, err := certSigner(cert)
	if err != nil {
		return false, err
	}
	rev, err := descField(desc, "revision-counter")
	if err != nil {
		return false, err
	}
	counter, err := strconv.ParseUint(rev, 10, 64)
	if err != nil {
		return false, fmt.Errorf("onion: descriptor: revision-counter %q", rev)
	}
	outer, err := pemBlock(desc, "superencrypted", "MESSAGE")
	if err != nil {
		return false, err
	}
	subcred := subcredential(pub, blinded)
	plain, ok := decryptLayer(outer, blinded, subcred, counter, outerLayer)
	if !ok {
		return false, errors.New("onion: descriptor: the outer layer does not decrypt with the service's own address")
	}
	inner, err := pemBlock(string(bytes.TrimRight(plain, "\x00")), "encrypted", "MESSAGE")
	if err != nil {
		return false, err
	}
	_, open = decryptLayer(inner, blinded, subcred, counter, innerLayer)
	return open, nil
}

// subcredential is N_hs_subcred of rend-spec-v3 section 2.1.
func subcredential(pub ed25519.PublicKey, blinded []byte) []byte {
	cred := sha3.Sum256(append([]byte("credential"), pub...))
	h := sha3.New256()
	h.Write([]byte("subcredential"))
	h.Write(cred[:])
	h.Write(blinded)
	return h.Sum(nil)
}

// decryptLayer decrypts one descriptor layer (rend-spec-v3 section 2.5.3)
// with SECRET_DATA secret and reports whether its MAC matched.
func decryptLayer(blob, secret, subcred []byte, counter uint64, constant string) ([]byte, bool) {
	const saltLen, keyLen, ivLen, macLen = 16, 32, 16, 32
	if len(blob) < saltLen+macLen {
		return nil, false
	}
	salt, ct, mac := blob[:saltLen], blob[saltLen:len(blob)-macLen], blob[len(blob)-macLen:]
	kdf := sha3.NewSHAKE256()
	kdf.Write(secret)
	kdf.Write(subcred)
	kdf.Write(binary.BigEndian.AppendUint64(nil, counter))
	kdf.Write(salt)
	kdf.Write([]byte(constant))
	keys := make([]byte, keyLen+ivLen+macLen)
	kdf.Read(keys)
	key, iv, macKey := keys[:keyLen], keys[keyLen:keyLen+ivLen], keys[keyLen+ivLen:]
	h := sha3.New256()
	h.Write(binary.BigEndian.AppendUint64(nil, macLen))
	h.Write(macKey)
	h.Write(binary.BigEndian.AppendUint64(nil, saltLen))
	h.Write(salt)
	h.Write(ct)
	if subtle.ConstantTimeCompare(h.Sum(nil), mac) != 1 {
		return nil, false
	}
	block, _ := aes.NewCipher(key) // 32 bytes: never fails
	plain := make([]byte, len(ct))
	cipher.NewCTR(block, iv).XORKeyStream(plain, ct)
	return plain, true
}

// certSigner returns the key that signed an ed25519 certificate (tor's
// cert-spec section 2.1: extension type 4), which for a descriptor's
// signing-key certificate is the service's blinded key.
func certSigner(c []byte) ([]byte, error) {
	const head = 1 + 1 + 4 + 1 + 32 // version, type, expiry, key type, certified key
	if len(c) < head+1 || c[0] != 1 {
		return nil, errors.New("onion: descriptor: bad signing-key certificate")
	}
	n, rest := int(c[head]), c[head+1:]
	for range n {
		if len(rest) < 4 {
			break
		}
		l, typ := int(binary.BigEndian.Uint16(rest)), rest[2]
		if len(rest) < 4+l {
			break
		}
		if typ == 4 && l == 32 {
			return rest[4 : 4+32], nil
		}
		rest = rest[4+l:]
	}
	return nil, errors.New("onion: descriptor: the signing-key certificate names no signing key")
}

// descField returns the value of the first line "keyword value".
func descField(doc, keyword string) (string, error) {
	for _, l := range strings.Split(doc, "\n") {
		if v, ok := strings.CutPrefix(l, keyword+" "); ok {
			return strings.TrimSpace(v), nil
		}
	}
	return "", fmt.Errorf("onion: descriptor: no %s", keyword)
}

// pemBlock returns the decoded body of the "-----BEGIN label-----" block
// that follows the line keyword.
func pemBlock(doc, keyword, label string) ([]byte, error) {
	lines := strings.Split(doc, "\n")
	for i, l := range lines {
		if strings.TrimSpace(l) != keyword || i+1 >= len(lines) || strings.TrimSpace(lines[i+1]) != "-----BEGIN "+label+"-----" {
			continue
		}
		var b strings.Builder
		for _, body := range lines[i+2:] {
			body = strings.TrimSpace(body)
			if body == "-----END "+label+"-----" {
				out, err := base64.RawStdEncoding.DecodeString(strings.TrimRight(b.String(), "="))
				if err != nil {
					return nil, fmt.Errorf("onion: descriptor: %s: %w", keyword, err)
				}
				return out, nil
			}
			b.WriteString(body)
		}
	}
	return nil, fmt.Errorf("onion: descriptor: no %s block", keyword)
}
