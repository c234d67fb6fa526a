package main

import (
	"bufio"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"
)

// The clean Debian root the packages are installed in: Debian's own
// packages, as debootstrap lays them out, plus tor's packages downloaded
// (not installed) so that the tests reach no network once it is cached.
const (
	rootSuite   = "bookworm"
	rootMirror  = "http://deb.debian.org/debian"
	rootVariant = "minbase"
	rootInclude = "systemd" // systemd-analyze, and deb-systemd-helper's init-system-helpers
)

// checkDebs runs lintian on the packages the release step wrote
// (dist/SHA256SUMS names them), failing on any error or warning, and then
// installs the one for this machine's architecture in a clean Debian
// root (testDebInRoot).
func checkDebs(ctx context.Context) error {
	debs, err := releasedDebs()
	if err != nil {
		return err
	}
	args := append([]string{"--fail-on", "error,warning", "--tag-display-limit", "0"}, debs...)
	fmt.Printf("lintian %s\n", strings.Join(debs, " "))
	if err := run(ctx, "lintian", args...); err != nil {
		return fmt.Errorf("deb: %w", err)
	}
	fmt.Println("lintian: no error, no warning")
	out, err := exec.CommandContext(ctx, "dpkg", "--print-architecture").Output()
	if err != nil {
		return fmt.Errorf("deb: dpkg --print-architecture: %w", err)
	}
	arch := strings.TrimSpace(string(out))
	for _, d := range debs {
		if strings.HasSuffix(d, "_"+arch+".deb") {
			return testDebInRoot(ctx, d, arch)
		}
	}
	return fmt.Errorf("deb: no %s package among %v", arch, debs)
}

// releasedDebs returns the .deb files dist/SHA256SUMS lists.
func releasedDebs() ([]string, error) {
	f, err := os.Open(filepath.Join(distDir, "SHA256SUMS"))
	if err != nil {
		return nil, fmt.Errorf("deb: %w (run the release step first)", err)
	}
	defer f.Close()
	var debs []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if f := strings.Fields(sc.Text()); len(f) == 2 && strings.HasSuffix(f[1], ".deb") {
			debs = append(debs, filepath.Join(distDir, f[1]))
		}
	}
	if len(debs) == 0 {
		return nil, errors.New("deb: dist/SHA256SUMS lists no .deb (run the release step first)")
	}
	return debs, nil
}

// debRoot is a Debian root directory the test runs commands in.
type debRoot struct{ dir string }

// sh runs script with /bin/sh inside the root (chroot, in a mount
// namespace of its own with /proc mounted), returning its combined output.
// The root's apt needs no network: tor's packages are in its cache.
func (r debRoot) sh(ctx context.Context, script string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "unshare", "--mount", "--propagation", "private", "--fork",
		"sh", "-c", `mount -t proc proc "$0/proc" && exec chroot "$0" /bin/sh -ec "$1"`, r.dir, script)
	cmd.Env = []string{"PATH=/usr/sbin:/usr/bin:/sbin:/bin", "DEBIAN_FRONTEND=noninteractive", "LC_ALL=C.UTF-8", "HOME=/root"}
	cmd.WaitDelay = 10 * time.Second
	out, err := cmd.CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("in the Debian root: %s: %w\n%s", firstLine(script), err, out)
	}
	return string(out), nil
}

func firstLine(s string) string {
	l, _, _ := strings.Cut(strings.TrimSpace(s), "\n")
	return l
}

// cachedRoot returns a tar of a clean Debian root for arch, this machine's
// Debian architecture, made with debootstrap on first use and kept in the
// user's cache directory under a name that says what it holds.
func cachedRoot(ctx context.Context, arch string) (string, error) {
	cache, err := os.UserCacheDir()
	if err != nil {
		return "", fmt.Errorf("deb: %w", err)
	}
	what := strings.Join([]string{rootSuite, rootMirror, rootVariant, rootInclude, arch, "download:tor"}, " ")
	key := fmt.Sprintf("%x", sha256.Sum256([]byte(what)))[:16]
	tarball := filepath.Join(cache, "onionchat", "debroot-"+rootSuite+"-"+key+".tar")
	if _, err := os.Stat(tarball); err == nil {
		fmt.Printf("Debian root from the cache: %s (%s)\n", tarball, what)
		return tarball, nil
	}
	fmt.Printf("Making a Debian root with debootstrap (%s), cached as %s\n", what, tarball)
	if err := os.MkdirAll(filepath.Dir(tarball), 0o755); err != nil {
		return "", fmt.Errorf("deb: %w", err)
	}
	dir, err := os.MkdirTemp("", "onionchat-debootstrap-")
	if err != nil {
		return "", fmt.Errorf("deb: %w", err)
	}
	defer os.RemoveAll(dir)
	start := time.Now()
	if err := run(ctx, "debootstrap", "--variant="+rootVariant, "--include="+rootInclude, rootSuite, dir, rootMirror); err != nil {
		return "", fmt.Errorf("deb: %w", err)
	}
	r := debRoot{dir}
	if err := os.WriteFile(filepath.Join(dir, "etc", "resolv.conf"), mustRead("/etc/resolv.conf"), 0o644); err != nil {
		return "", fmt.Errorf("deb: %w", err)
	}
	if _, err := r.sh(ctx, "apt-get update -q && apt-get install -q -y --download-only --no-install-recommends tor && rm -f /etc/resolv.conf"); err != nil {
		return "", fmt.Errorf("deb: %w", err)
	}
	tmp := tarball + ".tmp"
	if err := run(ctx, "tar", "-C", dir, "-cf", tmp, "."); err != nil {
		return "", fmt.Errorf("deb: %w", err)
	}
	if err := os.Rename(tmp, tarball); err != nil {
		return "", fmt.Errorf("deb: %w", err)
	}
	fmt.Printf("Debian root made in %v\n", time.Since(start).Round(time.Second))
	return tarball, nil
}

func mustRead(p string) []byte {
	b, _ := os.ReadFile(p)
	return b
}

// previousDeb packages the previous commit's onionchat for arch with this
// commit's packaging, under a version lower than any real one, for the
// upgrade test.
func previousDeb(ctx context.Context, arch, outDir string) (string, error) {
	var t target
	for _, c := range targets {
		if debArch[c.name] == arch {
			t = c
		}
	}
	if t.name == "" {
		return "", fmt.Errorf("deb: no release target for %s", arch)
	}
	src, err := os.MkdirTemp("", "onionchat-previous-")
	if err != nil {
		return "", fmt.Errorf("deb: %w", err)
	}
	defer os.RemoveAll(src)
	// A clone without history (CI may clone shallow) has no previous
	// commit: then the upgrade is from this tree's package under the same
	// lower version, which still runs every maintainer script and the
	// conffile's handling, and says so.
	from := "HEAD~1"
	if err := exec.CommandContext(ctx, "git", "rev-parse", "--verify", "--quiet", "HEAD~1^{commit}").Run(); err != nil {
		from = "HEAD"
		fmt.Println("deb: this clone has no previous commit (shallow?): the upgrade test upgrades from this tree's package, versioned as older")
	}
	archive := exec.CommandContext(ctx, "sh", "-c", `git archive "$1" | tar -x -C "$0"`, src, from)
	if out, err := archive.CombinedOutput(); err != nil {
		return "", fmt.Errorf("deb: git archive %s: %w\n%s", from, err, out)
	}
	bin := filepath.Join(outDir, "onionchat-previous")
	if err := buildTarget(ctx, t, "previous", src, bin, nil); err != nil {
		return "", err
	}
	docs, err := makeDebDocs(ctx, debSource{src: src, version: "previous", date: time.Unix(0, 0)})
	if err != nil {
		return "", err
	}
	return buildDeb(ctx, docs, t, bin, outDir)
}

// testDebInRoot installs deb in a clean Debian root, as an owner would
// with apt on a machine without tor, after the previous commit's package,
// and checks what Debian users expect: the files, the unit, the conffile,
// the service enabled and Debian's tor service turned off, an upgrade
// that keeps a changed conffile and the data, remove (data kept) and
// purge (data gone); then, on a machine where the owner runs Debian's tor
// already, that theirs is left as it was. A policy-rc.d that records and
// refuses every action stands in for the running systemd: the maintainer
// scripts' start and stop requests go through it, as Debian's do.
func testDebInRoot(ctx context.Context, deb, arch string) error {
	start := time.Now()
	tarball, err := cachedRoot(ctx, arch)
	if err != nil {
		return err
	}
	work, err := os.MkdirTemp("", "onionchat-debroot-")
	if err != nil {
		return fmt.Errorf("deb: %w", err)
	}
	defer os.RemoveAll(work)
	prev, err := previousDeb(ctx, arch, work)
	if err != nil {
		return err
	}
	dir := filepath.Join(work, "root")
	if err := os.Mkdir(dir, 0o755); err != nil {
		return fmt.Errorf("deb: %w", err)
	}
	if err := run(ctx, "tar", "-C", dir, "-xf", tarball); err != nil {
		return fmt.Errorf("deb: %w", err)
	}
	r := debRoot{dir}
	for name, p := range map[string]string{"previous.deb": prev, "current.deb": deb} {
		b, err := os.ReadFile(p)
		if err != nil {
			return fmt.Errorf("deb: %w", err)
		}
		if err := os.WriteFile(filepath.Join(dir, "tmp", name), b, 0o644); err != nil {
			return fmt.Errorf("deb: %w", err)
		}
	}
	// As if systemd ran: the scripts ask policy-rc.d, which says no.
	if _, err := r.sh(ctx, `mkdir -p /run/systemd/system
printf '#!/bin/sh\necho "$*" >> /var/log/policy-rc.d.log\nexit 101\n' > /usr/sbin/policy-rc.d
chmod 755 /usr/sbin/policy-rc.d`); err != nil {
		return err
	}
	var failed []string
	check := func(ok bool, format string, a ...any) {
		if !ok {
			failed = append(failed, fmt.Sprintf(format, a...))
		}
	}
	step := func(what, script string) string {
		if len(failed) > 0 {
			return ""
		}
		out, err := r.sh(ctx, script)
		if err != nil {
			failed = append(failed, what+": "+err.Error())
		}
		return out
	}
	const apt = "apt-get -q -y --no-install-recommends -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold "
	exists := func(p string) bool { _, err := os.Lstat(filepath.Join(dir, p)); return err == nil }
	policyLog := func() string { return string(mustRead(filepath.Join(dir, "var/log/policy-rc.d.log"))) }

	// 1. A machine without tor: apt installs tor with onionchat.
	if exists("usr/bin/tor") {
		return errors.New("deb: the clean Debian root already has tor")
	}
	out := step("install the previous package", apt+"install /tmp/previous.deb")
	check(strings.Contains(out, "sudo onionchat address"), "the install does not say how to get the address:\n%s", out)
	check(exists("etc/systemd/system/multi-user.target.wants/onionchat.service"), "onionchat.service is not enabled")
	check(!exists("etc/systemd/system/multi-user.target.wants/tor.service"), "Debian's tor.service, installed with onionchat, is still enabled")
	log := policyLog()
	fmt.Printf("deb: start and stop requests the maintainer scripts made on a machine without tor:\n%s", log)
	check(strings.Contains(log, "onionchat.service start"), "postinst did not ask to start onionchat.service (policy-rc.d saw: %q)", log)
	check(strings.Contains(log, "tor.service stop"), "postinst did not ask to stop Debian's tor.service (policy-rc.d saw: %q)", log)
	// What the service leaves: a data directory where DynamicUser keeps
	// it, with the onion key, and the owner's change to the conffile.
	out = step("make data", `mkdir -p -m 0700 /var/lib/private/onionchat && ln -s private/onionchat /var/lib/onionchat
onionchat auth add alice --data-dir /var/lib/onionchat >/dev/null
onionchat address --data-dir /var/lib/onionchat | tail -n 1
sed -i 's/^#max_conns = .*/max_conns = 500/' /etc/onionchat/config.toml
grep -x 'max_conns = 500' /etc/onionchat/config.toml
onionchat check-config --config /etc/onionchat/config.toml`)
	addr := strings.TrimSpace(firstLine(out))
	fmt.Printf("deb: the data directory's address, to be kept by upgrade and remove: %s\n", addr)
	check(strings.HasSuffix(addr, ".onion/"), "no address from onionchat address: %q", out)
	sameAddress := func(when string) {
		out := step("address "+when, "onionchat address --data-dir /var/lib/onionchat | tail -n 1")
		check(strings.TrimSpace(out) == addr, "%s the address is %q, was %q", when, strings.TrimSpace(out), addr)
	}

	// 2. The upgrade to this commit's package.
	out = step("upgrade", apt+"install /tmp/current.deb")
	step("the changed conffile is kept", "grep -x 'max_conns = 500' /etc/onionchat/config.toml")
	sameAddress("after the upgrade")
	check(strings.Contains(policyLog(), "onionchat.service restart"), "the upgrade did not ask to restart onionchat.service (policy-rc.d saw: %q)", policyLog())
	check(!exists("etc/systemd/system/multi-user.target.wants/tor.service"), "the upgrade enabled Debian's tor.service again")

	// 3. What the package holds, and checks of its own files.
	out = step("files", `test -x /usr/bin/onionchat && onionchat version
dpkg-query -W -f='${Conffiles}\n' onionchat
for f in /lib/systemd/system/onionchat.service /etc/onionchat/config.toml /usr/share/man/man1/onionchat.1.gz \
	/usr/share/doc/onionchat/copyright /usr/share/doc/onionchat/changelog.gz; do test -s "$f" || { echo "missing $f"; exit 1; }; done
grep -q '^ExecStart=.*/usr/bin/onionchat' /lib/systemd/system/onionchat.service
zcat /usr/share/doc/onionchat/changelog.gz | head -n 1`)
	check(strings.Contains(out, " /etc/onionchat/config.toml "), "config.toml is not a conffile:\n%s", out)
	out = step("systemd-analyze verify", "systemd-analyze verify /lib/systemd/system/onionchat.service 2>&1")
	check(strings.TrimSpace(out) == "", "systemd-analyze verify has findings:\n%s", out)
	step("the shipped config", "cp /etc/onionchat/config.toml /tmp/mine.toml && dpkg-deb --fsys-tarfile /tmp/current.deb | tar -xO ./etc/onionchat/config.toml > /tmp/shipped.toml && onionchat check-config --config /tmp/shipped.toml")

	// 4. Remove keeps the data (and the conffile); purge deletes both.
	step("remove", apt+"remove onionchat")
	check(!exists("usr/bin/onionchat"), "apt remove left /usr/bin/onionchat")
	check(exists("var/lib/private/onionchat/onion/hs_ed25519_secret_key"), "apt remove deleted the onion key")
	check(exists("etc/onionchat/config.toml"), "apt remove deleted the conffile")
	step("purge", apt+"purge onionchat")
	check(!exists("var/lib/private/onionchat") && !exists("var/lib/onionchat"), "apt purge left the data directory")
	check(!exists("etc/onionchat"), "apt purge left /etc/onionchat")

	// 5. An owner who runs Debian's tor already keeps it as it was.
	step("the owner's tor", apt+"purge tor && rm -f /var/log/policy-rc.d.log && "+apt+"install tor")
	check(exists("etc/systemd/system/multi-user.target.wants/tor.service"), "Debian's tor, installed by the owner, is not enabled: the test proves nothing")
	out = step("install beside the owner's tor", apt+"install /tmp/current.deb")
	check(exists("etc/systemd/system/multi-user.target.wants/tor.service"), "installing onionchat disabled the owner's tor.service")
	check(!strings.Contains(policyLog(), "tor.service stop"), "installing onionchat asked to stop the owner's tor (policy-rc.d saw: %q)", policyLog())
	check(exists("etc/systemd/system/multi-user.target.wants/onionchat.service"), "onionchat.service is not enabled beside the owner's tor")

	fmt.Printf("deb: start and stop requests the maintainer scripts made, beside the owner's tor:\n%s", policyLog())
	if len(failed) > 0 {
		return fmt.Errorf("deb: %s", strings.Join(failed, "\ndeb: "))
	}
	fmt.Printf("deb: installed, upgraded from the previous commit, removed and purged %s in a clean Debian %s in %v\n",
		filepath.Base(deb), rootSuite, time.Since(start).Round(time.Second))
	return nil
}
