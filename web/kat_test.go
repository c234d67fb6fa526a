package web_test

import (
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/hkdf"
	"crypto/hmac"
	"crypto/pbkdf2"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"math/big"
	"os"
	"strconv"
	"testing"
)

// TestKnownAnswerVector recomputes web/jstest/kat.json (protocol version 3)
// with Go's own PBKDF2, HKDF, HMAC, AES-GCM and ECDSA, following
// docs/protocol.md §9–§10 alone. envelope.test.mjs checks the page's
// JavaScript against the same file, so the page, the document and an
// independent implementation agree.
func TestKnownAnswerVector(t *testing.T) {
	var k struct {
		Passphrase, Server, Room, ChainKey, Text, MessageIV, EnvelopeIV  string
		Salt, RoomID, CheckCode, SigningPublic, ECDHPublic, KeyID, Inner string
		Envelope                                                         string
		Epoch, Counter                                                   uint32
		Time                                                             int64
	}
	readJSON(t, "jstest/kat.json", &k)
	h := func(s string) []byte {
		b, err := hex.DecodeString(s)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	salt := sha256.Sum256([]byte("onionchat/3 salt\x00" + k.Server + "\x00" + k.Room))
	equal(t, "salt", salt[:], h(k.Salt))
	secret, err := pbkdf2.Key(sha256.New, k.Passphrase, salt[:], 600000, 32)
	if err != nil {
		t.Fatal(err)
	}
	id, _ := hkdf.Key(sha256.New, secret, nil, "onionchat/3 room id", 16)
	if got := base64.RawURLEncoding.EncodeToString(id); got != k.RoomID {
		t.Fatalf("room id %s, kat.json says %s", got, k.RoomID)
	}
	check := sha256.Sum256([]byte("onionchat/3 check\x00" + k.RoomID))
	n := new(big.Int).SetBytes(check[:5])
	digits := fmt.Sprintf("%08d", new(big.Int).Mod(n, big.NewInt(100000000)).Int64())
	if got := digits[:4] + " " + digits[4:]; got != k.CheckCode {
		t.Fatalf("check code %q, kat.json says %q", got, k.CheckCode)
	}
	frameKey, _ := hkdf.Key(sha256.New, secret, nil, "onionchat/3 frame", 32)

	// Key id, and the message: HMAC chain, AES-GCM under the message key
	// with C ‖ key id ‖ head as additional data, ECDSA over the same.
	keyID := sha256.Sum256(append(h(k.ECDHPublic), h(k.SigningPublic)...))
	equal(t, "key id", keyID[:8], h(k.KeyID))
	mac := hmac.New(sha256.New, h(k.ChainKey))
	mac.Write([]byte{1})
	mk := mac.Sum(nil)
	ctx := []byte("onionchat/3\x00" + k.RoomID + "\x00")
	head := []byte{3}
	head = binary.BigEndian.AppendUint32(head, k.Epoch)
	head = binary.BigEndian.AppendUint32(head, k.Counter)
	content := []byte{1}
	content = binary.BigEndian.AppendUint64(content, uint64(k.Time))
	content = append(content, k.Text...)
	body := append(append(bytes.Clone(head), h(k.MessageIV)...), seal(t, mk, h(k.MessageIV), concat(ctx, keyID[:8], head), content)...)
	inner := h(k.Inner)
	if len(inner) != len(body)+64 || !bytes.Equal(inner[:len(body)], body) {
		t.Fatalf("Go computes the message\n%x\nkat.json says\n%x", body, inner)
	}
	x, y := elliptic.Unmarshal(elliptic.P256(), h(k.SigningPublic)) //nolint:staticcheck // raw point from the page
	if x == nil {
		t.Fatal("signing public key is not a P-256 point")
	}
	pub := &ecdsa.PublicKey{Curve: elliptic.P256(), X: x, Y: y}
	sig := inner[len(body):]
	digest := sha256.Sum256(concat(ctx, keyID[:8], body))
	if !ecdsa.Verify(pub, digest[:], new(big.Int).SetBytes(sig[:32]), new(big.Int).SetBytes(sig[32:])) {
		t.Fatal("the message's signature does not verify")
	}

	// The outer layer: inner ‖ 80 ‖ 00… to the smallest bucket, under the
	// frame key with C ‖ 03 as additional data.
	bucket := 512
	for 29+len(inner)+1 > bucket {
		bucket *= 2
	}
	padded := make([]byte, bucket-29)
	copy(padded, inner)
	padded[len(inner)] = 0x80
	env := append([]byte{3}, h(k.EnvelopeIV)...)
	env = append(env, seal(t, frameKey, h(k.EnvelopeIV), append(bytes.Clone(ctx), 3), padded)...)
	equal(t, "envelope", env, h(k.Envelope))
	if len(env) != 512 {
		t.Fatalf("envelope of %d bytes, want the 512-byte bucket", len(env))
	}
}

// TestKnownAnswerVectorV1 recomputes the vector of envelope version 1,
// which pages no longer speak, so that the protocol's history stays
// checkable (web/jstest/v1).
func TestKnownAnswerVectorV1(t *testing.T) {
	var k struct {
		Passphrase, ServerID, Room, Name, Text, SenderID, IV, Salt, Envelope string
		Time                                                                 int64
	}
	readJSON(t, "jstest/v1/kat.json", &k)
	sum := sha256.Sum256([]byte("onionchat/1 salt\x00" + k.ServerID + "\x00" + k.Room))
	if hex.EncodeToString(sum[:]) != k.Salt {
		t.Fatalf("salt %x, kat.json says %s", sum, k.Salt)
	}
	secret, err := pbkdf2.Key(sha256.New, k.Passphrase, sum[:], 600000, 32)
	if err != nil {
		t.Fatal(err)
	}
	sid, _ := hex.DecodeString(k.SenderID)
	iv, _ := hex.DecodeString(k.IV)
	key, err := hkdf.Key(sha256.New, secret, sid, "onionchat/1 message", 32)
	if err != nil {
		t.Fatal(err)
	}
	ad := []byte("onionchat/1\x00" + k.Room + "\x00" + k.SenderID)
	name, _ := json.Marshal(k.Name)
	text, _ := json.Marshal(k.Text)
	inner := `{"s":` + string(name) + `,"t":` + string(text) + `,"ts":` + strconv.FormatInt(k.Time, 10) + `,"n":1}`
	env := append(append([]byte{1}, sid...), iv...)
	env = append(env, seal(t, key, iv, ad, []byte(inner))...)
	want, _ := hex.DecodeString(k.Envelope)
	equal(t, "v1 envelope", env, want)
}

func readJSON(t *testing.T, path string, v any) {
	t.Helper()
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(raw, v); err != nil {
		t.Fatal(err)
	}
}

func seal(t *testing.T, key, iv, ad, plain []byte) []byte {
	t.Helper()
	block, err := aes.NewCipher(key)
	if err != nil {
		t.Fatal(err)
	}
	gcm, _ := cipher.NewGCM(block)
	return gcm.Seal(nil, iv, plain, ad)
}

func concat(parts ...[]byte) []byte { return bytes.Join(parts, nil) }

func equal(t *testing.T, what string, got, want []byte) {
	t.Helper()
	if !bytes.Equal(got, want) {
		t.Fatalf("%s: Go computes\n%x\nkat.json says\n%x", what, got, want)
	}
}
