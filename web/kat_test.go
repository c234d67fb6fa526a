package web_test

import (
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"crypto/hkdf"
	"crypto/pbkdf2"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"os"
	"strconv"
	"testing"
)

// TestKnownAnswerVector recomputes web/jstest/kat.json with Go's own
// PBKDF2, HKDF and AES-GCM, following docs/protocol.md. crypto.test.mjs
// checks the page's JavaScript against the same file, so the page, the
// document and an independent implementation agree.
func TestKnownAnswerVector(t *testing.T) {
	raw, err := os.ReadFile("jstest/kat.json")
	if err != nil {
		t.Fatal(err)
	}
	var k struct {
		Passphrase, ServerID, Room, Name, Text, SenderID, IV, Salt, Envelope string
		Time                                                                 int64
	}
	if err := json.Unmarshal(raw, &k); err != nil {
		t.Fatal(err)
	}
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
	block, _ := aes.NewCipher(key)
	gcm, _ := cipher.NewGCM(block)
	ad := []byte("onionchat/1\x00" + k.Room + "\x00" + k.SenderID)
	name, _ := json.Marshal(k.Name)
	text, _ := json.Marshal(k.Text)
	inner := `{"s":` + string(name) + `,"t":` + string(text) + `,"ts":` + strconv.FormatInt(k.Time, 10) + `,"n":1}`
	env := append(append([]byte{1}, sid...), iv...)
	env = gcm.Seal(env, iv, []byte(inner), ad)
	want, _ := hex.DecodeString(k.Envelope)
	if !bytes.Equal(env, want) {
		t.Fatalf("Go computes envelope\n%x\nkat.json says\n%x", env, want)
	}
}
