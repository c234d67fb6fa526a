package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"debug/buildinfo"
	"debug/elf"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"io"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"time"
)

// distDir is where release builds go (git-ignored).
const distDir = "dist"

// mainPkg is the package the release binaries are built from.
const mainPkg = "./cmd/onionchat"

// target is one release platform. All are linux, static (CGO_ENABLED=0).
type target struct {
	goarch  string      // GOARCH
	name    string      // file name suffix: onionchat-<version>-linux-<name>
	archVar string      // the GOARCH's instruction-set variable...
	level   string      // ...and its value, pinned so the environment cannot change it
	machine elf.Machine // what the ELF header must say
	class   elf.Class
}

// targets are the release platforms: PCs and servers, 64-bit Raspberry Pi
// OS (Pi 3, 4, 5, Zero 2), 32-bit Raspberry Pi OS on ARMv7 (Pi 2 and up)
// and on ARMv6 (Pi 1, Zero, Zero W).
var targets = []target{
	{"amd64", "amd64", "GOAMD64", "v1", elf.EM_X86_64, elf.ELFCLASS64},
	{"arm64", "arm64", "GOARM64", "v8.0", elf.EM_AARCH64, elf.ELFCLASS64},
	{"arm", "armv6", "GOARM", "6", elf.EM_ARM, elf.ELFCLASS32},
	{"arm", "armv7", "GOARM", "7", elf.EM_ARM, elf.ELFCLASS32},
}

// checkTarget is the target rebuilt from a clean cache by -check.
const checkTarget = "arm64"

// versionRE is what a version may look like: it ends up in file names and
// in -ldflags, which splits on spaces.
var versionRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._+-]*$`)

// release builds every target into dist/onionchat-<version>-linux-<name>,
// checks that each is a static ELF executable for its architecture, and
// packages the amd64, arm64 and armv6 binaries as .deb (see buildDeb),
// and writes dist/SHA256SUMS (sha256sum -c format). With -check it also
// rebuilds the arm64 binary from a copy, at another path, of the exact
// sources it was built from (failing if they changed during that build),
// with an empty GOCACHE, packages it again, and fails unless the two
// binaries and the two packages are byte-identical.
// The version is -version, else `git describe --tags --always --dirty`,
// else "dev".
func release(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("release", flag.ContinueOnError)
	version := fs.String("version", "", "version to stamp into the binaries (default: git describe, else dev)")
	check := fs.Bool("check", false, "also rebuild "+checkTarget+" from a clean cache at another path and compare bytes")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("release: unexpected arguments %q", fs.Args())
	}
	err := chdirRoot()
	if err != nil {
		return err
	}
	v := *version
	if v == "" {
		v = gitVersion(ctx)
	}
	if !versionRE.MatchString(v) {
		return fmt.Errorf("release: version %q: use letters, digits and . _ + - only", v)
	}
	if !declaresVersion(mainPkg) {
		fmt.Printf("note: %s declares no package-level `var version`; -X main.version has no effect until it declares and uses one\n", mainPkg)
	}
	fmt.Printf("Release %s (go build -trimpath, CGO_ENABLED=0, static)\n", v)

	if err := os.MkdirAll(distDir, 0o755); err != nil {
		return fmt.Errorf("release: %w", err)
	}
	var files []string
	var snap sources // what the checkTarget binary in dist/ was built from
	for _, t := range targets {
		out := filepath.Join(distDir, binaryName(v, t))
		if !*check || t.name != checkTarget {
			if err := buildTarget(ctx, t, v, ".", out, nil); err != nil {
				return err
			}
		} else if snap, err = buildSnapshot(ctx, t, v, out); err != nil {
			return err
		}
		files = append(files, out)
	}
	date, err := sourceDate(ctx, ".")
	if err != nil {
		return err
	}
	docs, err := makeDebDocs(ctx, debSource{src: ".", version: v, date: date})
	if err != nil {
		return err
	}
	for _, t := range targets {
		if debArch[t.name] == "" {
			continue
		}
		p, err := buildDeb(ctx, docs, t, filepath.Join(distDir, binaryName(v, t)), distDir)
		if err != nil {
			return err
		}
		fmt.Printf("  %-13s %s\n", debArch[t.name]+".deb", p)
		files = append(files, p)
	}
	sums := filepath.Join(distDir, "SHA256SUMS")
	if err := writeSums(sums, files); err != nil {
		return err
	}
	fmt.Printf("Wrote %s\n", sums)
	if *check {
		return checkReproducible(ctx, debSource{src: ".", version: v, date: date}, snap)
	}
	return nil
}

// binaryName is the file name of t's binary at version v.
func binaryName(v string, t target) string {
	return "onionchat-" + v + "-linux-" + t.name
}

// gitVersion describes the checkout ("v1.2.0", "v1.2.0-3-gabc1234-dirty",
// or a commit hash without tags), or returns "dev" without git.
func gitVersion(ctx context.Context) string {
	out, err := exec.CommandContext(ctx, "git", "describe", "--tags", "--always", "--dirty").Output()
	if v := strings.TrimSpace(string(out)); err == nil && v != "" {
		return v
	}
	return "dev"
}

// buildEnv is the environment of a release build of t: ours, with every
// variable that changes the output pinned (os/exec uses the last value of a
// duplicated key). GOFLAGS is set rather than cleared: an empty value would
// let `go env -w GOFLAGS=...` through. extra is appended last.
func buildEnv(t target, extra []string) []string {
	env := append(os.Environ(),
		"CGO_ENABLED=0",
		"GOOS=linux",
		"GOARCH="+t.goarch,
		t.archVar+"="+t.level,
		"GOFLAGS=-buildvcs=false",
		"GOWORK=off",
	)
	return append(env, extra...)
}

// buildTarget builds mainPkg for t at version v, running go in dir, into
// out; then checks out with checkBinary and prints its size and the time
// taken.
func buildTarget(ctx context.Context, t target, v, dir, out string, extraEnv []string) error {
	absOut, err := filepath.Abs(out)
	if err != nil {
		return fmt.Errorf("release: %w", err)
	}
	cmd := exec.CommandContext(ctx, "go", "build",
		"-trimpath", "-buildvcs=false",
		"-ldflags=-s -w -buildid= -X main.version="+v,
		"-o", absOut, mainPkg)
	cmd.Dir = dir
	cmd.Env = buildEnv(t, extraEnv)
	cmd.Stdout, cmd.Stderr = os.Stdout, os.Stderr
	cmd.WaitDelay = 10 * time.Second
	start := time.Now()
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("release: build linux/%s: %w", t.name, err)
	}
	took := time.Since(start)
	if err := checkBinary(absOut, t, v, declaresVersion(filepath.Join(dir, mainPkg))); err != nil {
		return err
	}
	fi, err := os.Stat(absOut)
	if err != nil {
		return fmt.Errorf("release: %w", err)
	}
	fmt.Printf("  linux/%-6s %-44s %6.2f MiB  %6.1fs\n", t.name, out, float64(fi.Size())/(1<<20), took.Seconds())
	return nil
}

// checkBinary fails unless path is a statically linked ELF executable for
// t (no PT_INTERP, no PT_DYNAMIC; machine and class as t says) whose
// embedded build settings say linux, t's GOARCH and instruction-set level,
// CGO_ENABLED=0 and -trimpath; and, if stamped (the source declares
// main.version), unless it holds the version string v.
func checkBinary(path string, t target, v string, stamped bool) error {
	f, err := elf.Open(path)
	if err != nil {
		return fmt.Errorf("release: %s: %w", path, err)
	}
	defer f.Close()
	if f.Machine != t.machine || f.Class != t.class {
		return fmt.Errorf("release: %s is %v %v, want %v %v", path, f.Class, f.Machine, t.class, t.machine)
	}
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP || p.Type == elf.PT_DYNAMIC {
			return fmt.Errorf("release: %s is dynamically linked (has %v)", path, p.Type)
		}
	}
	bi, err := buildinfo.ReadFile(path)
	if err != nil {
		return fmt.Errorf("release: %s: build info: %w", path, err)
	}
	got := map[string]string{}
	for _, s := range bi.Settings {
		got[s.Key] = s.Value
	}
	want := map[string]string{
		"GOOS":        "linux",
		"GOARCH":      t.goarch,
		t.archVar:     t.level,
		"CGO_ENABLED": "0",
		"-trimpath":   "true",
	}
	for k, w := range want {
		if got[k] != w {
			return fmt.Errorf("release: %s: build setting %s=%q, want %q", path, k, got[k], w)
		}
	}
	if stamped {
		// -trimpath keeps -ldflags out of the build info, and the
		// binary is stripped: look for the string itself.
		data, err := os.ReadFile(path)
		if err != nil {
			return fmt.Errorf("release: %w", err)
		}
		if !bytes.Contains(data, []byte(v)) {
			return fmt.Errorf("release: %s: version %q is not in the binary: -X main.version set nothing (the linker drops main.version unless the program uses it)", path, v)
		}
	}
	return nil
}

// writeSums writes the SHA-256 of each file to path, one "HEX  NAME" line
// each with NAME relative to path's directory, as sha256sum -c reads it.
func writeSums(path string, files []string) error {
	var b bytes.Buffer
	for _, f := range files {
		sum, err := fileSHA256(f)
		if err != nil {
			return err
		}
		fmt.Fprintf(&b, "%x  %s\n", sum, filepath.Base(f))
	}
	if err := os.WriteFile(path, b.Bytes(), 0o644); err != nil {
		return fmt.Errorf("release: %w", err)
	}
	return nil
}

func fileSHA256(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("release: %w", err)
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return nil, fmt.Errorf("release: read %s: %w", path, err)
	}
	return h.Sum(nil), nil
}

// buildSnapshot builds t into out like buildTarget, and returns the
// sources it was built from: read just before the build, and read again
// just after to make sure nobody edited them meanwhile.
func buildSnapshot(ctx context.Context, t target, v, out string) (sources, error) {
	before, err := readSources(ctx, t)
	if err != nil {
		return nil, err
	}
	if err := buildTarget(ctx, t, v, ".", out, nil); err != nil {
		return nil, err
	}
	after, err := readSources(ctx, t)
	if err != nil {
		return nil, err
	}
	if !before.equal(after) {
		return nil, fmt.Errorf("release: sources changed while linux/%s was building; run again", t.name)
	}
	return before, nil
}

// checkReproducible writes snap, the sources the checkTarget binary in
// dist/ was built from, to a new temporary directory, builds them there
// with a new, empty GOCACHE, and fails unless the result is byte-identical
// to the binary in dist/. The temporary directory is removed on success
// and kept, for diffing, on mismatch.
func checkReproducible(ctx context.Context, s debSource, snap sources) error {
	v := s.version
	var t target
	for _, c := range targets {
		if c.name == checkTarget {
			t = c
		}
	}
	tmp, err := os.MkdirTemp("", "onionchat-release-check-")
	if err != nil {
		return fmt.Errorf("release: %w", err)
	}
	keep := false
	defer func() {
		if !keep {
			os.RemoveAll(tmp)
		}
	}()
	src := filepath.Join(tmp, "src")
	if err := snap.write(src); err != nil {
		return err
	}
	cache := filepath.Join(tmp, "gocache")
	if err := os.Mkdir(cache, 0o755); err != nil {
		return fmt.Errorf("release: %w", err)
	}
	fmt.Printf("Rebuilding linux/%s from a copy of its %d source files in %s, with an empty GOCACHE:\n", t.name, len(snap), src)
	second := filepath.Join(tmp, "out", binaryName(v, t))
	if err := buildTarget(ctx, t, v, src, second, []string{"GOCACHE=" + cache}); err != nil {
		return err
	}
	first := filepath.Join(distDir, binaryName(v, t))
	a, err := os.ReadFile(first)
	if err != nil {
		return fmt.Errorf("release: %w", err)
	}
	b, err := os.ReadFile(second)
	if err != nil {
		return fmt.Errorf("release: %w", err)
	}
	if !bytes.Equal(a, b) {
		keep = true
		return fmt.Errorf("release: not reproducible: %s (%d bytes, sha256 %x) and %s (%d bytes, sha256 %x), built from the same sources, differ from byte %d",
			first, len(a), sha256.Sum256(a), second, len(b), sha256.Sum256(b), firstDiff(a, b))
	}
	fmt.Printf("Reproducible: both linux/%s builds are the same %d bytes (sha256 %x)\n", t.name, len(a), sha256.Sum256(a))
	// The package again, around the second binary, every file of it made
	// anew.
	docs, err := makeDebDocs(ctx, s)
	if err != nil {
		return err
	}
	debDir := filepath.Join(tmp, "deb")
	if err := os.Mkdir(debDir, 0o755); err != nil {
		return fmt.Errorf("release: %w", err)
	}
	secondDeb, err := buildDeb(ctx, docs, t, second, debDir)
	if err != nil {
		return err
	}
	firstDeb := filepath.Join(distDir, filepath.Base(secondDeb))
	if a, err = os.ReadFile(firstDeb); err != nil {
		return fmt.Errorf("release: %w", err)
	}
	if b, err = os.ReadFile(secondDeb); err != nil {
		return fmt.Errorf("release: %w", err)
	}
	if !bytes.Equal(a, b) {
		keep = true
		return fmt.Errorf("release: not reproducible: %s and %s, packaged from the same sources, differ from byte %d", firstDeb, secondDeb, firstDiff(a, b))
	}
	fmt.Printf("Reproducible: both %s packages are the same %d bytes (sha256 %x)\n", debArch[t.name], len(a), sha256.Sum256(a))
	return nil
}

// firstDiff is the offset of the first byte where a and b differ.
func firstDiff(a, b []byte) int {
	for i := range min(len(a), len(b)) {
		if a[i] != b[i] {
			return i
		}
	}
	return min(len(a), len(b))
}

// sources maps the path, relative to the module root, of each file a
// build reads from this module to its contents.
type sources map[string][]byte

// listedPackage is the part of `go list -json` output that readSources
// and copyrightFile use.
type listedPackage struct {
	Standard bool
	Dir      string
	Module   *listedModule
	// The files of a package that go build reads.
	GoFiles, CgoFiles, SFiles, HFiles, SysoFiles, EmbedFiles []string
}

type listedModule struct {
	Path, Version, Dir string
	Main               bool
	Replace            *listedModule
}

// goListDeps lists mainPkg and every package it depends on when built for
// t, running go in dir.
func goListDeps(ctx context.Context, dir string, t target) ([]listedPackage, error) {
	cmd := exec.CommandContext(ctx, "go", "list", "-deps",
		"-json=Standard,Dir,Module,GoFiles,CgoFiles,SFiles,HFiles,SysoFiles,EmbedFiles", mainPkg)
	cmd.Dir = dir
	cmd.Env = buildEnv(t, nil)
	cmd.Stderr = os.Stderr
	out, err := cmd.Output()
	if err != nil {
		return nil, fmt.Errorf("release: go list %s: %w", mainPkg, err)
	}
	var pkgs []listedPackage
	dec := json.NewDecoder(bytes.NewReader(out))
	for {
		var p listedPackage
		if err := dec.Decode(&p); errors.Is(err, io.EOF) {
			return pkgs, nil
		} else if err != nil {
			return nil, fmt.Errorf("release: go list output: %w", err)
		}
		pkgs = append(pkgs, p)
	}
}

// readSources reads go.mod, go.sum and every file that building mainPkg
// for t reads from this module (Go, assembly and embedded files of each of
// its packages in the build), from the module root, the working directory.
// Dependencies outside the module come from the module cache.
func readSources(ctx context.Context, t target) (sources, error) {
	root, err := os.Getwd()
	if err != nil {
		return nil, fmt.Errorf("release: %w", err)
	}
	pkgs, err := goListDeps(ctx, ".", t)
	if err != nil {
		return nil, err
	}
	rels := []string{"go.mod", "go.sum"}
	for _, p := range pkgs {
		if p.Module == nil || !p.Module.Main {
			continue
		}
		dir, err := filepath.Rel(root, p.Dir)
		if err != nil || !filepath.IsLocal(dir) {
			return nil, fmt.Errorf("release: package directory %s is outside %s", p.Dir, root)
		}
		for _, list := range [][]string{p.GoFiles, p.CgoFiles, p.SFiles, p.HFiles, p.SysoFiles, p.EmbedFiles} {
			for _, name := range list {
				rels = append(rels, filepath.Join(dir, name))
			}
		}
	}
	s := sources{}
	for _, rel := range rels {
		data, err := os.ReadFile(rel)
		if err != nil {
			return nil, fmt.Errorf("release: read sources: %w", err)
		}
		s[rel] = data
	}
	return s, nil
}

// equal reports whether s and o hold the same files with the same bytes.
func (s sources) equal(o sources) bool {
	return maps.EqualFunc(s, o, bytes.Equal)
}

// write creates the files of s under dst.
func (s sources) write(dst string) error {
	for rel, data := range s {
		p := filepath.Join(dst, rel)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			return fmt.Errorf("release: copy sources: %w", err)
		}
		if err := os.WriteFile(p, data, 0o644); err != nil {
			return fmt.Errorf("release: copy sources: %w", err)
		}
	}
	return nil
}

// declaresVersion reports whether the package in dir declares a
// package-level `var version`, the variable -X main.version sets. (The
// binaries are stripped, so this is checked in the source.)
func declaresVersion(dir string) bool {
	files, _ := filepath.Glob(filepath.Join(dir, "*.go"))
	for _, name := range files {
		if strings.HasSuffix(name, "_test.go") {
			continue
		}
		f, err := parser.ParseFile(token.NewFileSet(), name, nil, parser.SkipObjectResolution)
		if err != nil {
			continue
		}
		for _, d := range f.Decls {
			g, ok := d.(*ast.GenDecl)
			if !ok || g.Tok != token.VAR {
				continue
			}
			for _, s := range g.Specs {
				for _, n := range s.(*ast.ValueSpec).Names {
					if n.Name == "version" {
						return true
					}
				}
			}
		}
	}
	return false
}
