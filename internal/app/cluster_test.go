package app

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/onionchat/onionchat/internal/config"
)

// [cluster] reaches the links, and a link that would leave the machine in
// clear is refused with the file, line and key before anything starts.
func TestClusterSection(t *testing.T) {
	noEnv(t)
	pw := filepath.Join(t.TempDir(), "links.password")
	os.WriteFile(pw, []byte("s3cret/@:\n"), 0o600)
	open644 := filepath.Join(t.TempDir(), "readable.password")
	os.WriteFile(open644, []byte("s3cret\n"), 0o644)
	os.Chmod(open644, 0o644) // whatever the umask
	parse := func(doc string) (settings, error) {
		c, err := config.Parse("c.toml", []byte(doc))
		if err != nil {
			return settings{}, err
		}
		return resolve(c)
	}
	s, err := parse("[cluster]\nlisten = \"127.0.0.1:6222\"\npeers = [\"127.0.0.1:6223\"]\nuser = \"oc\"\npassword_file = \"" + pw + "\"\n")
	if err != nil {
		t.Fatal(err)
	}
	if o := s.cluster; o == nil || o.Listen != "127.0.0.1:6222" || o.Peers[0] != "127.0.0.1:6223" || o.Password != "s3cret/@:" || o.DeadAfter.Seconds() != 5 {
		t.Fatalf("cluster options %+v", o)
	}
	if s, _ := parse(""); s.cluster != nil {
		t.Fatal("no [cluster], yet links")
	}
	front := strings.Repeat("a", 56) + ".onion"
	creds := "user = \"oc\"\npassword_file = \"" + pw + "\"\n"
	if s, err := parse("[cluster]\nlisten = \"127.0.0.1:6222\"\nfront = \"" + front + "\"\n" + creds); err != nil || s.onion.OnionbalanceFront != front {
		t.Fatalf("front: %v %+v", err, s.onion)
	}
	for doc, want := range map[string]string{
		"[cluster]\nlisten = \"192.168.1.10:6222\"\n" + creds:                                          "c.toml:2: cluster.listen: 192.168.1.10:6222 is not a loopback address",
		"[cluster]\nlisten = \"127.0.0.1:6222\"\n\npeers = [\"192.168.1.11:6222\"]\n" + creds:          "c.toml:4: cluster.peers: 192.168.1.11:6222 is not a loopback address",
		"[cluster]\nlisten = \"127.0.0.1:6222\"\nuser = \"oc\"\npassword_file = \"/nonexistent/pw\"\n": "c.toml:4: cluster.password_file:",
		"[cluster]\nlisten = \"192.168.1.10:6222\"\ntls_cert = \"/etc/oc/pi.crt\"\n" + creds:           "c.toml:3: cluster.tls_cert: TLS needs tls_cert, tls_key and tls_ca together",
		"[cluster]\nlisten = \"127.0.0.1:6222\"\n":                                                     "cluster.user: a cluster always needs credentials",
		"[cluster]\nlisten = \"127.0.0.1:6222\"\nuser = \"oc\"\npassword_file = \"" + open644 + "\"\n": "c.toml:4: cluster.password_file: " + open644 + " can be read by others (mode 0644)",
	} {
		if _, err := parse(doc); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%q:\n got %v\nwant %s", doc, err, want)
		}
	}
}
