package web_test

import (
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"crypto/hkdf"
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
	"strings"
	"testing"
)

// TestKnownAnswerVector recomputes web/jstest/kat.json (protocol version 4)
// with Go's own PBKDF2, HKDF, SHA-256 and AES-GCM, following
// docs/protocol.md §9–§10 alone, and RFC 9420's MLS-Exporter (§8.5)
// written out here from the RFC: what the page lays out itself around MLS
// (room id, check code, safety code, the outer layer and its padding, a
// room message's chain, a file's key and chunk). envelope.test.mjs checks
// the page's JavaScript (and ts-mls's exporter) against the same file, so
// the page, the document and an independent implementation agree.
func TestKnownAnswerVector(t *testing.T) {
	var k struct {
		Passphrase, Server, Room, SigningPublic, ExporterSecret, FileID, Data string
		EnvelopeIV, Previous, Text, Salt, RoomID, CheckCode, SafetyCode       string
		FileKey, Chunk, Envelope, Content, Chain                              string
		Leaf, Epoch, Index, RoomIndex                                         uint32
		Time                                                                  int64
	}
	readJSON(t, "jstest/kat.json", &k)
	h := func(s string) []byte {
		b, err := hex.DecodeString(s)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	salt := sha256.Sum256([]byte("onionchat/4 salt\x00" + k.Server + "\x00" + k.Room))
	equal(t, "salt", salt[:], h(k.Salt))
	secret, err := pbkdf2.Key(sha256.New, k.Passphrase, salt[:], 600000, 32)
	if err != nil {
		t.Fatal(err)
	}
	id, _ := hkdf.Key(sha256.New, secret, nil, "onionchat/4 room id", 16)
	if got := base64.RawURLEncoding.EncodeToString(id); got != k.RoomID {
		t.Fatalf("room id %s, kat.json says %s", got, k.RoomID)
	}
	if got := digits(sha256.Sum256([]byte("onionchat/4 check\x00"+k.RoomID)), 1, 8); got != k.CheckCode {
		t.Fatalf("check code %q, kat.json says %q", got, k.CheckCode)
	}
	if got := digits(sha256.Sum256(concat([]byte("onionchat/4 code\x00"), h(k.SigningPublic))), 5, 5); got != k.SafetyCode {
		t.Fatalf("safety code %q, kat.json says %q", got, k.SafetyCode)
	}
	frameKey, _ := hkdf.Key(sha256.New, secret, nil, "onionchat/4 frame", 32)
	ctx := []byte("onionchat/4\x00" + k.RoomID + "\x00")

	// A room message: kind ‖ index ‖ previous ‖ time ‖ text, and its chain
	// value SHA-256("onionchat/4 chain" ‖ previous ‖ content).
	content := []byte{1}
	content = binary.BigEndian.AppendUint32(content, k.RoomIndex)
	content = append(content, h(k.Previous)...)
	content = binary.BigEndian.AppendUint64(content, uint64(k.Time))
	content = append(content, k.Text...)
	equal(t, "room message content", content, h(k.Content))
	chain := sha256.Sum256(concat([]byte("onionchat/4 chain"), h(k.Previous), content))
	equal(t, "chain", chain[:], h(k.Chain))

	// A file's key: MLS-Exporter("onionchat/4 file", leaf ‖ file id, 32).
	fileKey := mlsExporter(t, h(k.ExporterSecret), "onionchat/4 file", binary.BigEndian.AppendUint32(nil, k.Leaf), h(k.FileID))
	equal(t, "file key", fileKey, h(k.FileKey))
	// Its chunk: 03 ‖ file id ‖ epoch ‖ index ‖ AES-GCM(file key, iv = 0 ‖ index, ad = C ‖ head, data).
	head := append([]byte{3}, h(k.FileID)...)
	head = binary.BigEndian.AppendUint64(head, uint64(k.Epoch))
	head = binary.BigEndian.AppendUint32(head, k.Index)
	iv := binary.BigEndian.AppendUint32(make([]byte, 8), k.Index)
	chunk := append(bytes.Clone(head), seal(t, fileKey, iv, concat(ctx, head), h(k.Data))...)
	equal(t, "chunk", chunk, h(k.Chunk))

	// The outer layer: inner ‖ 80 ‖ 00… to the smallest bucket, under the
	// frame key with C ‖ 04 as additional data.
	bucket := 512
	for 29+len(chunk)+1 > bucket {
		bucket *= 2
	}
	padded := make([]byte, bucket-29)
	copy(padded, chunk)
	padded[len(chunk)] = 0x80
	env := append([]byte{4}, h(k.EnvelopeIV)...)
	env = append(env, seal(t, frameKey, h(k.EnvelopeIV), append(bytes.Clone(ctx), 4), padded)...)
	equal(t, "envelope", env, h(k.Envelope))
	if len(env) != 512 {
		t.Fatalf("envelope of %d bytes, want the 512-byte bucket", len(env))
	}
}

// digits writes groups of n decimal digits: each group is a big-endian
// number of 5 bytes of sum mod 10^n (the check code is one group of 8,
// written 4 and 4; a safety code five groups of 5).
func digits(sum [32]byte, groups, n int) string {
	var out []string
	mod := new(big.Int).Exp(big.NewInt(10), big.NewInt(int64(n)), nil)
	for i := range groups {
		v := new(big.Int).Mod(new(big.Int).SetBytes(sum[i*5:i*5+5]), mod)
		out = append(out, fmt.Sprintf("%0*d", n, v.Int64()))
	}
	if groups == 1 {
		return out[0][:n/2] + " " + out[0][n/2:]
	}
	return strings.Join(out, " ")
}

// mlsExporter is RFC 9420 §8.5 for the cipher suite's SHA-256 (§5.1,
// §8): MLS-Exporter(Label, Context, Length) =
// ExpandWithLabel(DeriveSecret(exporter_secret, Label), "exported",
// Hash(Context), Length), with ExpandWithLabel(Secret, Label, Context,
// Length) = KDF.Expand(Secret, KDFLabel, Length), KDFLabel = uint16 Length
// ‖ opaque<V> "MLS 1.0 " + Label ‖ opaque<V> Context, and DeriveSecret its
// Length the hash's with an empty Context. Vectors here are short, so
// each <V> length is one byte.
func mlsExporter(t *testing.T, secret []byte, label string, context ...[]byte) []byte {
	t.Helper()
	expand := func(secret []byte, label string, ctx []byte, n int) []byte {
		info := binary.BigEndian.AppendUint16(nil, uint16(n))
		l := "MLS 1.0 " + label
		info = append(append(info, byte(len(l))), l...)
		info = append(append(info, byte(len(ctx))), ctx...)
		out, err := hkdf.Expand(sha256.New, secret, string(info), n)
		if err != nil {
			t.Fatal(err)
		}
		return out
	}
	derived := expand(secret, label, nil, sha256.Size)
	hc := sha256.Sum256(concat(context...))
	return expand(derived, "exported", hc[:], 32)
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
