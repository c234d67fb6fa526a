package main

import (
	"bytes"
	"compress/gzip"
	"context"
	"embed"
	"fmt"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/goreleaser/nfpm/v2"
	"github.com/goreleaser/nfpm/v2/deb"
	"github.com/goreleaser/nfpm/v2/files"
)

// debian holds the maintainer scripts and lintian overrides of the .deb.
//
//go:embed debian
var debian embed.FS

// debArch is the Debian architecture of each release target that gets a
// .deb. armhf carries the ARMv6 build: Raspberry Pi OS's 32-bit armhf is
// ARMv6 (Pi 1, Zero), and an ARMv6 binary runs on Debian's ARMv7 armhf too.
var debArch = map[string]string{"amd64": "amd64", "arm64": "arm64", "armv6": "armhf"}

// Where the package puts things.
const (
	debBinary   = "/usr/bin/onionchat"
	debUnit     = "/lib/systemd/system/onionchat.service"
	debConfig   = "/etc/onionchat/config.toml"
	debDoc      = "/usr/share/doc/onionchat"
	debManPage  = "/usr/share/man/man1/onionchat.1.gz"
	debOverride = "/usr/share/lintian/overrides/onionchat"
	debMaint    = "onionchat maintainers <onionchat@users.noreply.github.com>"
	debHomepage = "https://github.com/onionchat/onionchat"
)

// debDescription is the package's description: a synopsis line, then
// paragraphs. It says what remove and purge do to the onion key.
const debDescription = `self-hosted end-to-end encrypted group chat over Tor
onionchat starts its own tor and publishes a chat page and its relay as a
v3 onion service; friends open the .onion address in Tor Browser. Every
message is encrypted and decrypted in the browser: the server relays
ciphertext it cannot read and keeps no logs.
.
The package runs it as a hardened systemd service (onionchat.service),
configured by /etc/onionchat/config.toml. Debian's own tor service is
turned off if tor is installed along with onionchat, and left as it was
if it was installed before.
.
The onion key in /var/lib/onionchat is the address friends have:
removing the package keeps that directory, purging it deletes it, and
with it the address, for good.`

// releaseRE matches a version from a release tag (1.2, 1.2.0, and what
// git describe adds after it), as opposed to a bare commit hash, which
// may start with a digit too.
var releaseRE = regexp.MustCompile(`^[0-9]+(\.[0-9]+)+([-+~].*)?$`)

// debVersion turns a release version into a Debian one, which must start
// with a digit and sort in release order: v1.2.0 gives 1.2.0; git
// describe's v1.2.0-3-gabc1234-dirty gives 1.2.0+3.gabc1234.dirty (after
// 1.2.0); anything else, such as a bare commit hash, gives
// 0~<UTC date of the sources>.<version>, which sorts by date and before
// any tagged release.
func debVersion(v string, date time.Time) string {
	if len(v) > 1 && v[0] == 'v' && v[1] >= '0' && v[1] <= '9' {
		v = v[1:]
	}
	clean := func(s string) string { return strings.NewReplacer("-", ".", "_", ".").Replace(s) }
	if releaseRE.MatchString(v) {
		base, rest, found := strings.Cut(v, "-")
		if !found {
			return clean(base)
		}
		return clean(base) + "+" + clean(rest)
	}
	return "0~" + date.UTC().Format("20060102150405") + "." + clean(v)
}

// sourceDate is the time every file of a package carries:
// $SOURCE_DATE_EPOCH if set, else the commit time of the checkout in dir,
// else the Unix epoch, so that the same sources give the same bytes.
func sourceDate(ctx context.Context, dir string) (time.Time, error) {
	if s := os.Getenv("SOURCE_DATE_EPOCH"); s != "" {
		n, err := strconv.ParseInt(s, 10, 64)
		if err != nil {
			return time.Time{}, fmt.Errorf("release: SOURCE_DATE_EPOCH=%q: %w", s, err)
		}
		return time.Unix(n, 0).UTC(), nil
	}
	cmd := exec.CommandContext(ctx, "git", "log", "-1", "--format=%ct")
	cmd.Dir = dir
	if out, err := cmd.Output(); err == nil {
		if n, err := strconv.ParseInt(strings.TrimSpace(string(out)), 10, 64); err == nil {
			return time.Unix(n, 0).UTC(), nil
		}
	}
	return time.Unix(0, 0).UTC(), nil
}

// debSource is what a package is made from: a source tree (src, the
// module root), the release version and the time every file carries.
type debSource struct {
	src     string
	version string
	date    time.Time
}

// debDocs are the files of the package that no target changes, made from
// s.src by makeDebDocs: once for every package of a release.
type debDocs struct {
	debSource
	pkgVersion string            // the Debian version (debVersion)
	files      map[string][]byte // by name in the staging directory: unit, conffile, man page, changelog, lintian overrides
	copyright  string            // the copyright file's paragraphs that no target changes (copyrightHead)
}

// makeDebDocs makes, from s.src, every file of a package that no target
// changes: the unit, the conffile, the man page (from the command's own
// help, built for this machine), the changelog (from git), the lintian
// overrides, and the head of the copyright file.
func makeDebDocs(ctx context.Context, s debSource) (debDocs, error) {
	d := debDocs{debSource: s, pkgVersion: debVersion(s.version, s.date), files: map[string][]byte{}}
	gen := d.files
	unit, err := os.ReadFile(filepath.Join(s.src, unitFile))
	if err != nil {
		return debDocs{}, fmt.Errorf("release: %w", err)
	}
	u, err := withExecBinary(string(unit), debBinary)
	if err != nil {
		return debDocs{}, err
	}
	gen["onionchat.service"] = []byte(u)
	example, err := os.ReadFile(filepath.Join(s.src, "config.example.toml"))
	if err != nil {
		return debDocs{}, fmt.Errorf("release: %w", err)
	}
	gen["config.toml"] = commentedConfig(example)
	help, err := commandHelp(ctx, s.src)
	if err != nil {
		return debDocs{}, err
	}
	if gen["onionchat.1.gz"], err = gzipMax([]byte(manPage(help, d.pkgVersion, s.date))); err != nil {
		return debDocs{}, err
	}
	if gen["changelog.gz"], err = gzipMax([]byte(changelog(ctx, s.src, d.pkgVersion, s.date))); err != nil {
		return debDocs{}, err
	}
	if gen["lintian-overrides"], err = debian.ReadFile("debian/lintian-overrides"); err != nil {
		return debDocs{}, err
	}
	if d.copyright, err = copyrightHead(ctx, s.src); err != nil {
		return debDocs{}, err
	}
	return d, nil
}

// buildDeb writes the .deb of target t, holding the binary bin, into
// outDir and returns its path. Everything in it but the binary and the
// copyright file's paragraphs of what the binary embeds (copyrightFile:
// the licences shipped by every Go module it embeds for t and every
// licence file among the page's embedded files) is d's.
func buildDeb(ctx context.Context, d debDocs, t target, bin, outDir string) (string, error) {
	arch := debArch[t.name]
	if arch == "" {
		return "", fmt.Errorf("release: no Debian architecture for linux/%s", t.name)
	}
	stage, err := os.MkdirTemp("", "onionchat-deb-")
	if err != nil {
		return "", fmt.Errorf("release: %w", err)
	}
	defer os.RemoveAll(stage)
	s, v := d.debSource, d.pkgVersion

	copyright, err := copyrightFile(ctx, s.src, d.copyright, t)
	if err != nil {
		return "", err
	}
	gen := maps.Clone(d.files)
	gen["copyright"] = copyright
	for name, data := range gen {
		if err := os.WriteFile(filepath.Join(stage, name), data, 0o644); err != nil {
			return "", fmt.Errorf("release: %w", err)
		}
	}
	script := func(name string) (string, error) {
		b, err := debian.ReadFile("debian/" + name)
		if err != nil {
			return "", err
		}
		p := filepath.Join(stage, name)
		return p, os.WriteFile(p, b, 0o755)
	}
	var scripts [4]string
	for i, name := range []string{"preinst", "postinst", "prerm", "postrm"} {
		if scripts[i], err = script(name); err != nil {
			return "", fmt.Errorf("release: %w", err)
		}
	}

	file := func(src, dst string, mode os.FileMode, typ string) *files.Content {
		return &files.Content{Source: src, Destination: dst, Type: typ,
			FileInfo: &files.ContentFileInfo{Owner: "root", Group: "root", Mode: mode, MTime: s.date}}
	}
	info := &nfpm.Info{
		Name:          "onionchat",
		Arch:          arch,
		Platform:      "linux",
		Version:       v,
		VersionSchema: "none",
		Section:       "net",
		Priority:      "optional",
		Maintainer:    debMaint,
		Description:   debDescription,
		Homepage:      debHomepage,
		MTime:         s.date,
		Overridables: nfpm.Overridables{
			Depends:  []string{"tor"},
			Suggests: []string{"onionbalance"},
			Umask:    0o022,
			Contents: files.Contents{
				file(bin, debBinary, 0o755, files.TypeFile),
				file(filepath.Join(stage, "onionchat.service"), debUnit, 0o644, files.TypeFile),
				file(filepath.Join(stage, "config.toml"), debConfig, 0o644, files.TypeConfig),
				file(filepath.Join(stage, "copyright"), debDoc+"/copyright", 0o644, files.TypeFile),
				file(filepath.Join(stage, "changelog.gz"), debDoc+"/changelog.gz", 0o644, files.TypeFile),
				file(filepath.Join(stage, "onionchat.1.gz"), debManPage, 0o644, files.TypeFile),
				file(filepath.Join(stage, "lintian-overrides"), debOverride, 0o644, files.TypeFile),
			},
			Scripts: nfpm.Scripts{PreInstall: scripts[0], PostInstall: scripts[1], PreRemove: scripts[2], PostRemove: scripts[3]},
			Deb:     nfpm.Deb{Compression: "xz"},
		},
	}
	info = nfpm.WithDefaults(info)
	out := filepath.Join(outDir, deb.Default.ConventionalFileName(info))
	var b bytes.Buffer
	if err := deb.Default.Package(info, &b); err != nil {
		return "", fmt.Errorf("release: package %s: %w", out, err)
	}
	if err := os.WriteFile(out, b.Bytes(), 0o644); err != nil {
		return "", fmt.Errorf("release: %w", err)
	}
	return out, nil
}

// gzipMax compresses b as gzip -9n does: best compression, no name, no
// time (lintian asks for both).
func gzipMax(b []byte) ([]byte, error) {
	var out bytes.Buffer
	w, err := gzip.NewWriterLevel(&out, gzip.BestCompression)
	if err != nil {
		return nil, err
	}
	w.Write(b)
	if err := w.Close(); err != nil {
		return nil, err
	}
	return out.Bytes(), nil
}

// commentedConfig is config.example.toml with every key commented out:
// the shipped conffile sets nothing, so a value that changes in a later
// release reaches every owner who did not set it, and every default is
// still there to read and uncomment. Section headers stay: an empty
// section is valid TOML.
func commentedConfig(example []byte) []byte {
	var b strings.Builder
	b.WriteString("# onionchat's configuration for the onionchat.service unit. Every key is\n" +
		"# commented out at its default; uncomment and change what you need, then\n" +
		"# run: sudo onionchat check-config --config /etc/onionchat/config.toml\n" +
		"# and: sudo systemctl restart onionchat\n#\n")
	for l := range strings.Lines(string(example)) {
		t := strings.TrimSpace(l)
		if t != "" && !strings.HasPrefix(t, "#") && !strings.HasPrefix(t, "[") {
			b.WriteString("#" + l)
			continue
		}
		b.WriteString(l)
	}
	return []byte(b.String())
}

// commandHelp builds onionchat from src for this machine and returns what
// `onionchat --help` prints.
func commandHelp(ctx context.Context, src string) (string, error) {
	dir, err := os.MkdirTemp("", "onionchat-help-")
	if err != nil {
		return "", fmt.Errorf("release: %w", err)
	}
	defer os.RemoveAll(dir)
	bin := filepath.Join(dir, "onionchat")
	cmd := exec.CommandContext(ctx, "go", "build", "-o", bin, mainPkg)
	cmd.Dir = src
	cmd.Env = append(os.Environ(), "GOFLAGS=-buildvcs=false", "GOWORK=off")
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("release: build onionchat for its help: %w\n%s", err, out)
	}
	cmd = exec.CommandContext(ctx, bin, "--help")
	cmd.Env = []string{"PATH=/usr/bin:/bin", "HOME=" + dir}
	out, err := cmd.CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("release: onionchat --help: %w\n%s", err, out)
	}
	return string(out), nil
}
