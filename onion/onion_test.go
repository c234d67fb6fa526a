package onion

import (
	"crypto/ed25519"
	"encoding/hex"
	"errors"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	torkey "github.com/cretz/bine/torutil/ed25519"
)

func TestAddressFormat(t *testing.T) {
	// rend-spec-v3 test vector from tor's own tests (test_hs_common.c,
	// test_build_address): this public key gives this address.
	pub, _ := hex.DecodeString("d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a")
	if got, want := Address(ed25519.PublicKey(pub)), "25njqamcweflpvkl73j4szahhihoc4xt3ktcgjnpaingr5yhkenl5sid.onion"; got != want {
		t.Fatalf("Address = %s, want %s", got, want)
	}
}

func TestKeyCreatedOnceAndReadable(t *testing.T) {
	data := filepath.Join(t.TempDir(), "data")
	dir, addr, err := EnsureKey(data)
	if err != nil {
		t.Fatal(err)
	}
	if len(addr) != 56+len(".onion") || !strings.HasSuffix(addr, ".onion") {
		t.Fatalf("address %q", addr)
	}
	for _, f := range []string{SecretKeyFile, PublicKeyFile} {
		fi, err := os.Stat(filepath.Join(dir, f))
		if err != nil || fi.Mode().Perm() != 0o600 {
			t.Fatalf("%s: %v %v", f, fi, err)
		}
	}
	if fi, _ := os.Stat(dir); fi.Mode().Perm() != 0o700 {
		t.Fatalf("service dir mode %v", fi.Mode())
	}
	// The expanded key's public half (computed the way tor does, from the
	// scalar) is the public key file's, and the address again.
	sec, _ := os.ReadFile(filepath.Join(dir, SecretKeyFile))
	pubFile, _ := os.ReadFile(filepath.Join(dir, PublicKeyFile))
	if got := torkey.PrivateKey(sec[32:]).PublicKey(); string(got) != string(pubFile[32:]) {
		t.Fatal("secret and public key files disagree")
	}
	_, addr2, err := EnsureKey(data)
	if err != nil || addr2 != addr {
		t.Fatalf("second start: %s, %v; want the same address %s", addr2, err, addr)
	}
	if got, err := LoadAddress(data); err != nil || got != addr {
		t.Fatalf("LoadAddress = %s, %v", got, err)
	}
}

// The secret key file holds tor's expanded form of the key: a known
// answer, computed once from RFC 8032 5.1.5 (SHA-512 of the seed, the
// scalar clamped).
func TestSecretKeyExpanded(t *testing.T) {
	seed := make([]byte, ed25519.SeedSize)
	for i := range seed {
		seed[i] = byte(i)
	}
	got := secretKey(ed25519.NewKeyFromSeed(seed))
	const want = "3894eea49c580aef816935762be049559d6d1440dede12e6a125f1841fff8e6f" +
		"a9d71862a3e5746b571be3d187b0041046f52ebd850c7cbd5fde8ee38473b649"
	if len(got) != 96 || string(got[:32]) != string(secretHeader) || hex.EncodeToString(got[32:]) != want {
		t.Fatalf("secret key file %x", got)
	}
}

func TestLoadAddressWithoutKey(t *testing.T) {
	if _, err := LoadAddress(t.TempDir()); err != ErrNoKey {
		t.Fatalf("got %v, want ErrNoKey", err)
	}
}

func TestClientAuthFiles(t *testing.T) {
	data := filepath.Join(t.TempDir(), "data")
	k, err := AddClient(data, "alice")
	if err != nil {
		t.Fatal(err)
	}
	if len(k.Private) != 52 || len(k.Public) != 52 {
		t.Fatalf("key lengths %d %d, want 52 base32 characters", len(k.Private), len(k.Public))
	}
	b, err := os.ReadFile(filepath.Join(data, ServiceDir, ClientsDir, "alice.auth"))
	if err != nil || string(b) != "descriptor:x25519:"+k.Public+"\n" {
		t.Fatalf("alice.auth = %q, %v", b, err)
	}
	if strings.Contains(string(b), k.Private) {
		t.Fatal("the private key was stored")
	}
	if _, err := AddClient(data, "alice"); err == nil {
		t.Fatal("a second alice replaced the first")
	}
	if _, err := AddClient(data, "../evil"); err == nil {
		t.Fatal("a path as a client name was accepted")
	}
	AddClient(data, "bob")
	names, _ := Clients(data)
	if strings.Join(names, ",") != "alice,bob" {
		t.Fatalf("Clients = %v", names)
	}
	if err := RemoveClient(data, "alice", false); err != nil {
		t.Fatal(err)
	}
	if err := RemoveClient(data, "alice", false); err == nil {
		t.Fatal("removing a missing client did not fail")
	}
	names, _ = Clients(data)
	if strings.Join(names, ",") != "bob" {
		t.Fatalf("after remove: %v", names)
	}
	// The last key opens the service to anyone with the address: only
	// with allowOpen.
	if err := RemoveClient(data, "bob", false); !errors.Is(err, ErrLastClient) {
		t.Fatalf("removing the last key without allowOpen: %v", err)
	}
	if names, _ = Clients(data); len(names) != 1 {
		t.Fatalf("the refused remove removed: %v", names)
	}
	if err := RemoveClient(data, "bob", true); err != nil {
		t.Fatal(err)
	}
	if entries, _ := os.ReadDir(filepath.Join(data, ServiceDir)); len(entries) != 3 {
		t.Errorf("files left beside the keys: %v", entries) // no staged NAME.auth.new
	}
	addr, _ := LoadAddress(data)
	line := ClientAuthLine(addr, k)
	if !strings.HasPrefix(line, strings.TrimSuffix(addr, ".onion")+":descriptor:x25519:") {
		t.Fatalf("auth line %q", line)
	}
}

func TestParseProxyHeader(t *testing.T) {
	a, err := ParseProxyHeader("PROXY TCP6 fc00:dead:beef:4dad::ffff:fffe ::1 65535 42\r\n")
	if err != nil {
		t.Fatal(err)
	}
	if CircuitID(a) != 0xfffffffe || a.IP.String() != "fc00:dead:beef:4dad::ffff:fffe" {
		t.Fatalf("got %v id %x", a, CircuitID(a))
	}
	for _, bad := range []string{
		"", "PROXY TCP6 fc00:dead:beef:4dad::1 ::1 1 42\n", "PROXY UDP6 ::1 ::1 1 2\r\n",
		"PROXY TCP6 nonsense ::1 1 2\r\n", "PROXY TCP6 ::1 ::1 70000 2\r\n", "GET / HTTP/1.1\r\n",
	} {
		if _, err := ParseProxyHeader(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}

func TestCircuitListener(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	cl := CircuitListener{ln}
	defer cl.Close()
	go func() {
		c, _ := net.Dial("tcp", ln.Addr().String())
		c.Write([]byte("PROXY TCP6 fc00:dead:beef:4dad::1:2 ::1 7 80\r\nGET / HTTP/1.1\r\n"))
		time.Sleep(100 * time.Millisecond)
		c.Close()
		bad, _ := net.Dial("tcp", ln.Addr().String())
		bad.Write([]byte("GET / HTTP/1.1\r\n\r\n"))
		time.Sleep(100 * time.Millisecond)
		bad.Close()
	}()
	c, err := cl.Accept()
	if err != nil {
		t.Fatal(err)
	}
	if got := c.RemoteAddr().String(); got != "[fc00:dead:beef:4dad::1:2]:7" {
		t.Fatalf("RemoteAddr %s", got)
	}
	buf := make([]byte, 64)
	n, _ := c.Read(buf)
	if string(buf[:n]) != "GET / HTTP/1.1\r\n" {
		t.Fatalf("after the header, read %q", buf[:n])
	}
	c.Close()
	c, _ = cl.Accept()
	if _, err := c.Read(buf); err == nil || c.RemoteAddr().String() != "invalid" {
		t.Fatalf("a connection without a PROXY header was readable (%v, %v)", err, c.RemoteAddr())
	}
	c.Close()
}

func TestTorrcIsHardened(t *testing.T) {
	rc, err := torrc{dataDir: "/var/lib/x/tor", control: "/run/x/control.sock", cookieFile: "/run/x/control_auth_cookie",
		owner: 4242, serviceDir: "/var/lib/x/onion", socket: "/run/x/hub.sock", sandbox: true, pow: true}.render()
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"DataDirectory /var/lib/x/tor\n", "CookieAuthFile /run/x/control_auth_cookie\n",
		"ControlPort unix:/run/x/control.sock\n", "CookieAuthentication 1\n", "__OwningControllerProcess 4242\n",
		"SocksPort 0\n", "ClientOnly 1\n", "Log notice stdout\n", "SafeLogging 1\n", "AvoidDiskWrites 1\n", "Sandbox 1\n",
		"MaxMemInQueues 64 MB\n", "HiddenServiceDir /var/lib/x/onion\n", "HiddenServicePort 80 unix:/run/x/hub.sock\n",
		"HiddenServiceExportCircuitID haproxy\n", "HiddenServiceEnableIntroDoSDefense 1\n",
		"HiddenServicePoWDefensesEnabled 1\n", "HiddenServiceMaxStreams 32\n", "HiddenServiceMaxStreamsCloseCircuit 1\n",
	} {
		if !strings.Contains(rc, want) {
			t.Errorf("torrc lacks %q:\n%s", want, rc)
		}
	}
	if strings.Contains(rc, "Log notice file") || strings.Count(rc, "ControlPort") != 1 {
		t.Errorf("torrc has a log file, or a control port other than the unix socket:\n%s", rc)
	}
}

func TestFindTorMissing(t *testing.T) {
	_, err := FindTor(filepath.Join(t.TempDir(), "no-tor-here"))
	if err == nil || !strings.Contains(err.Error(), "apt-get install tor") {
		t.Fatalf("got %v, want an install hint", err)
	}
}

// FuzzParseProxyHeader: whatever arrives as a PROXY header, the parser
// neither panics nor accepts a line that is not one.
func FuzzParseProxyHeader(f *testing.F) {
	for _, s := range []string{
		"PROXY TCP6 fc00:dead:beef:4dad::ffff:ffff ::1 65535 42\r\n",
		"PROXY TCP4 1.2.3.4 5.6.7.8 1 2\r\n", "PROXY UNKNOWN\r\n", "PROXY TCP6 :: :: 0 0\r\n", "",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, line string) {
		a, err := ParseProxyHeader(line)
		if err != nil {
			return
		}
		if !strings.HasPrefix(line, "PROXY TCP") || !strings.HasSuffix(line, "\r\n") || a.IP == nil || a.Port < 0 || a.Port > 65535 {
			t.Fatalf("accepted %q as %v", line, a)
		}
	})
}
