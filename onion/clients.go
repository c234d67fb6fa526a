package onion

import (
	"crypto/ecdh"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"syscall"

	"github.com/onionchat/onionchat/internal/securefile"
)

// ClientKey is a client-authorization key pair: the service keeps only
// Public (in authorized_clients), the friend's Tor Browser holds Private.
type ClientKey struct {
	Name    string
	Public  string // base32, as in NAME.auth
	Private string // base32, what Tor Browser asks for
}

var clientName = regexp.MustCompile(`^[A-Za-z0-9_-]{1,32}$`)

func checkClientName(name string) error {
	if !clientName.MatchString(name) {
		return fmt.Errorf("onion: client name %q: use 1 to 32 letters, digits, '-' or '_'", name)
	}
	return nil
}

// ErrLastClient is wrapped by RemoveClient's error when it refuses to
// remove the last key: without any, client authorization is off and anyone
// who has the address can reach the service.
var ErrLastClient = errors.New("the last authorized client")

// AddClient creates an x25519 key pair for a friend called name, stores
// its public half as authorized_clients/NAME.auth and returns both
// halves. The private half is not stored anywhere.
//
// The file appears whole or not at all (written and synced under another
// name beside authorized_clients, then linked into it), mode 0600, and
// owned like the data directory: run as root for a service user's data
// directory (sudo onionchat auth add), AddClient hands everything it
// creates to that user and group, so that the service's tor can read it.
// It follows no symbolic link inside the data directory.
func AddClient(dataDir, name string) (ClientKey, error) {
	if err := checkClientName(name); err != nil {
		return ClientKey{}, err
	}
	if _, _, err := EnsureKey(dataDir); err != nil {
		return ClientKey{}, err
	}
	svc := filepath.Join(dataDir, ServiceDir)
	dir := filepath.Join(svc, ClientsDir)
	if err := securefile.EnsureDir(dir); err != nil {
		return ClientKey{}, fmt.Errorf("onion: %w", err)
	}
	own, err := ownerOf(dataDir)
	if err != nil {
		return ClientKey{}, err
	}
	for _, p := range []string{svc, dir} {
		if err := realDir(p); err != nil {
			return ClientKey{}, err
		}
	}
	// What EnsureKey and EnsureDir just made belongs to the service user too.
	for _, p := range []string{svc, filepath.Join(svc, SecretKeyFile), filepath.Join(svc, PublicKeyFile), dir} {
		if err := own.give(p); err != nil {
			return ClientKey{}, err
		}
	}
	final := filepath.Join(dir, name+".auth")
	exists := fmt.Errorf("onion: a client called %q exists already; remove it first", name)
	if _, err := os.Lstat(final); err == nil {
		return ClientKey{}, exists
	}
	priv, err := ecdh.X25519().GenerateKey(rand.Reader)
	if err != nil {
		return ClientKey{}, fmt.Errorf("onion: generate client key: %w", err)
	}
	k := ClientKey{Name: name, Public: b32.EncodeToString(priv.PublicKey().Bytes()), Private: b32.EncodeToString(priv.Bytes())}
	// Staged outside authorized_clients, so that neither tor nor a running
	// onionchat ever sees a partial file or one with the wrong owner.
	staged := filepath.Join(svc, "."+name+".auth.new")
	os.Remove(staged) // left by an interrupted run, if any
	defer os.Remove(staged)
	if err := securefile.WriteNew(staged, []byte("descriptor:x25519:"+k.Public+"\n")); err != nil {
		return ClientKey{}, fmt.Errorf("onion: %w", err)
	}
	if err := own.give(staged); err != nil {
		return ClientKey{}, err
	}
	if err := os.Link(staged, final); errors.Is(err, fs.ErrExist) {
		return ClientKey{}, exists
	} else if err != nil {
		return ClientKey{}, fmt.Errorf("onion: %w", err)
	}
	if d, err := os.Open(dir); err == nil {
		d.Sync()
		d.Close()
	}
	return k, nil
}

// owner is the user and group of a data directory: the ones its tor runs
// as.
type owner struct {
	uid, gid int
	chown    bool // this process is root and the directory is another user's
}

func ownerOf(dataDir string) (owner, error) {
	fi, err := os.Stat(dataDir)
	if err != nil {
		return owner{}, fmt.Errorf("onion: %w", err)
	}
	st := fi.Sys().(*syscall.Stat_t)
	o := owner{uid: int(st.Uid), gid: int(st.Gid)}
	o.chown = os.Geteuid() == 0 && (o.uid != 0 || o.gid != 0)
	return o, nil
}

// give hands path (never the target of a symbolic link) to the owner, if
// this process is root working for another user.
func (o owner) give(path string) error {
	if !o.chown {
		return nil
	}
	if err := os.Lchown(path, o.uid, o.gid); err != nil {
		return fmt.Errorf("onion: hand %s to the data directory's owner: %w", path, err)
	}
	return nil
}

// realDir refuses a path that is a symbolic link or not a directory.
func realDir(p string) error {
	fi, err := os.Lstat(p)
	if err != nil {
		return fmt.Errorf("onion: %w", err)
	}
	if !fi.IsDir() {
		return fmt.Errorf("onion: %s is not a directory (a symbolic link, say); onionchat creates it itself: move it away", p)
	}
	return nil
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
// reach the service once tor has reloaded its client list. It refuses to
// remove the last key (ErrLastClient) unless allowOpen is set: that turns
// client authorization off, and anyone with the address gets in.
func RemoveClient(dataDir, name string, allowOpen bool) error {
	if err := checkClientName(name); err != nil {
		return err
	}
	names, err := Clients(dataDir)
	if err != nil {
		return err
	}
	if !slices.Contains(names, name) {
		return fmt.Errorf("onion: no client called %q", name)
	}
	if len(names) == 1 && !allowOpen {
		return fmt.Errorf("onion: %q is %w: without any key, anyone who has the address can reach the service", name, ErrLastClient)
	}
	if err := os.Remove(filepath.Join(dataDir, ServiceDir, ClientsDir, name+".auth")); err != nil {
		return fmt.Errorf("onion: %w", err)
	}
	return nil
}

// ClientAuthLine is what a tor client (not Tor Browser, which asks for the
// key alone) puts in a file of its ClientOnionAuthDir to reach addr.
func ClientAuthLine(addr string, k ClientKey) string {
	return strings.TrimSuffix(addr, ".onion") + ":descriptor:x25519:" + k.Private
}

// CheckClients checks the authorized_clients directory of dataDir the way
// tor reads it, as the user tor runs as (this process's: onionchat starts
// tor as itself), and returns the names of its keys and, by file name, the
// key each file holds, from the very bytes the check read: a second read
// could see another file, or block on a FIFO. tor skips a key file it
// cannot read or parse with no more than a warning, and turns client
// authorization on only if at least one key loads: so every entry must be
// a key tor loads, or the service could end up open while its owner
// believes it closed. The directory must be this user's and private (tor
// refuses it otherwise); each entry must be a regular file called
// NAME.auth, readable, holding one "descriptor:x25519:" key. The error
// names the file, says why, and what to do. No directory means no keys.
func CheckClients(dataDir string) ([]string, map[string]string, error) {
	dir := filepath.Join(dataDir, ServiceDir, ClientsDir)
	fi, err := os.Lstat(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil, nil
	}
	if err != nil {
		return nil, nil, fmt.Errorf("onion: %w", err)
	}
	if !fi.IsDir() {
		return nil, nil, fmt.Errorf("onion: %s is not a directory; move it away (onionchat auth add makes it)", dir)
	}
	if err := torOwns(dir, fi); err != nil {
		return nil, nil, err
	}
	if perm := fi.Mode().Perm(); perm&0o077 != 0 {
		return nil, nil, fmt.Errorf("onion: %s has mode %04o and tor refuses a directory others can read; run: chmod 700 %s", dir, perm, dir)
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, nil, fmt.Errorf("onion: list the client keys: %w", err)
	}
	var names []string
	keys := map[string]string{}
	for _, e := range entries {
		p := filepath.Join(dir, e.Name())
		name, ok := strings.CutSuffix(e.Name(), ".auth")
		if !ok || checkClientName(name) != nil {
			return nil, nil, fmt.Errorf("onion: %s is not a client key onionchat made (NAME.auth, NAME of 1 to 32 letters, digits, '-' or '_'), "+
				"and tor would skip it with a warning: move it out of %s", p, dir)
		}
		key, err := checkClientFile(p, name)
		if err != nil {
			return nil, nil, err
		}
		names = append(names, name)
		keys[e.Name()] = key
	}
	return names, keys, nil
}

// maxClientFile bounds what checkClientFile reads: a key line is 71 bytes.
const maxClientFile = 1024

// checkClientFile checks that tor, running as this process's user, can
// read path and finds one client key in it, and returns that key.
func checkClientFile(path, name string) (string, error) {
	redo := fmt.Sprintf("onionchat auth remove %s, then onionchat auth add %s", name, name)
	// O_NONBLOCK: a FIFO put here must not hang the check; O_NOFOLLOW: tor
	// would follow a link, but onionchat never makes one.
	f, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NONBLOCK|syscall.O_NOFOLLOW, 0)
	if errors.Is(err, fs.ErrPermission) {
		fi, serr := os.Lstat(path)
		if serr != nil {
			return "", fmt.Errorf("onion: client key %s: tor (uid %d) cannot read it: %w", path, os.Getuid(), err)
		}
		st := fi.Sys().(*syscall.Stat_t)
		return "", fmt.Errorf("onion: client key %s: tor runs as uid %d and cannot read it (owner uid %d, group %d, mode %04o), "+
			"so it would serve without this key; run: chown %d:%d %s (or %s as that user)",
			path, os.Getuid(), st.Uid, st.Gid, fi.Mode().Perm(), os.Getuid(), os.Getgid(), path, redo)
	}
	if err != nil {
		return "", fmt.Errorf("onion: client key %s: %w; remove it or run: %s", path, err, redo)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return "", fmt.Errorf("onion: client key %s: %w", path, err)
	}
	if !fi.Mode().IsRegular() {
		return "", fmt.Errorf("onion: client key %s is not a regular file; move it away and run: onionchat auth add %s", path, name)
	}
	b, err := io.ReadAll(io.LimitReader(f, maxClientFile+1))
	if err != nil {
		return "", fmt.Errorf("onion: client key %s: tor (uid %d) cannot read it: %w; run: %s", path, os.Getuid(), err, redo)
	}
	if !validClientKey(b) {
		return "", fmt.Errorf("onion: client key %s is not one line \"descriptor:x25519:\" and 52 base32 characters, "+
			"so tor would skip it; run: %s", path, redo)
	}
	return strings.TrimSpace(string(b)), nil
}

// validClientKey reports whether b holds what AddClient writes, which tor
// parses as one x25519 client key (rend-spec-v3, "Client authorization").
func validClientKey(b []byte) bool {
	if len(b) > maxClientFile {
		return false
	}
	f := strings.Split(strings.TrimSuffix(string(b), "\n"), ":")
	if len(f) != 3 || f[0] != "descriptor" || f[1] != "x25519" || len(f[2]) != 52 {
		return false
	}
	k, err := b32.DecodeString(f[2])
	return err == nil && len(k) == 32
}

// torOwns refuses a directory that tor, running as this process's user,
// would refuse: one owned by another user.
func torOwns(dir string, fi fs.FileInfo) error {
	st := fi.Sys().(*syscall.Stat_t)
	if uid := os.Getuid(); int(st.Uid) != uid {
		return fmt.Errorf("onion: %s belongs to uid %d, but tor runs as uid %d and refuses it; run: chown -R %d:%d %s "+
			"(or run onionchat as uid %d)", dir, st.Uid, uid, uid, os.Getgid(), dir, st.Uid)
	}
	return nil
}

// clientsStamp summarises the authorized_clients directory and its
// entries: names, types, modes, owners, sizes, modification and change
// times (a chown or chmod changes the last).
func clientsStamp(dir string) string {
	var b strings.Builder
	stamp := func(name string, fi fs.FileInfo) {
		st := fi.Sys().(*syscall.Stat_t)
		fmt.Fprintf(&b, "%s %v %d:%d %d %d.%d %d.%d;", name, fi.Mode(), st.Uid, st.Gid, fi.Size(),
			st.Mtim.Sec, st.Mtim.Nsec, st.Ctim.Sec, st.Ctim.Nsec)
	}
	fi, err := os.Lstat(dir)
	if err != nil {
		return "" // no directory: no keys, as an empty one
	}
	// The directory's own times change when tor creates or checks it;
	// what matters of it is who may write to it. Its entries say the rest.
	if st, ok := fi.Sys().(*syscall.Stat_t); ok && (fi.Mode().Perm() != 0o700 || st.Uid != uint32(os.Getuid())) {
		fmt.Fprintf(&b, ". %v %d:%d;", fi.Mode(), st.Uid, st.Gid)
	}
	entries, _ := os.ReadDir(dir)
	for _, e := range entries {
		if fi, err := os.Lstat(filepath.Join(dir, e.Name())); err == nil {
			stamp(e.Name(), fi)
		}
	}
	return b.String()
}

// revoked names a key of was that is missing from now or different there,
// or returns "" if now only adds to was.
func revoked(was, now map[string]string) string {
	for name, key := range was {
		if got, ok := now[name]; !ok || got != key {
			return name
		}
	}
	return ""
}
