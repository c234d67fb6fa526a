package main

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/pelletier/go-toml/v2"
)

// root is the module root, two levels up from this package.
func root(t *testing.T) string {
	t.Helper()
	r, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func TestDebVersion(t *testing.T) {
	date := time.Date(2026, 12, 7, 3, 41, 34, 0, time.UTC)
	for v, want := range map[string]string{
		"v1.2.0":                  "1.2.0",
		"1.2.0":                   "1.2.0",
		"v1.2.0-3-gabc1234":       "1.2.0+3.gabc1234",
		"v1.2.0-3-gabc1234-dirty": "1.2.0+3.gabc1234.dirty",
		"0289a5c":                 "0~20261207034134.0289a5c",
		"0289a5c-dirty":           "0~20261207034134.0289a5c.dirty",
		"dev":                     "0~20261207034134.dev",
		"1234567":                 "0~20261207034134.1234567",
	} {
		if got := debVersion(v, date); got != want {
			t.Errorf("debVersion(%q) = %q, want %q", v, got, want)
		}
	}
	// Later sources sort later; a tag sorts after every untagged build.
	older := debVersion("aaaaaaa", date)
	newer := debVersion("0000000", date.Add(time.Second))
	if _, err := exec.LookPath("dpkg"); err == nil {
		for _, c := range [][2]string{{older, newer}, {newer, "0.1.0"}, {"1.2.0", "1.2.0+3.gabc1234"}} {
			if exec.Command("dpkg", "--compare-versions", c[0], "lt", c[1]).Run() != nil {
				t.Errorf("dpkg does not sort %s before %s", c[0], c[1])
			}
		}
	}
}

// The shipped config sets nothing: parsed, it is empty but for its
// sections, and every key of the example is there, commented.
func TestCommentedConfig(t *testing.T) {
	example, err := os.ReadFile(filepath.Join(root(t), "config.example.toml"))
	if err != nil {
		t.Fatal(err)
	}
	got := commentedConfig(example)
	var m map[string]any
	if err := toml.Unmarshal(got, &m); err != nil {
		t.Fatalf("the shipped config is not TOML: %v", err)
	}
	for k, v := range m {
		if sec, ok := v.(map[string]any); !ok || len(sec) > 0 {
			t.Errorf("the shipped config sets %s = %v", k, v)
		}
	}
	keys := 0
	for l := range strings.Lines(string(example)) {
		if l = strings.TrimSpace(l); l != "" && !strings.HasPrefix(l, "#") && !strings.HasPrefix(l, "[") {
			keys++
			if !bytes.Contains(got, []byte("\n#"+l+"\n")) {
				t.Errorf("the shipped config lacks %q, commented", l)
			}
		}
	}
	if keys < 10 {
		t.Fatalf("only %d keys in config.example.toml: the test proves nothing", keys)
	}
}

// The man page holds every command and flag the help names, and groff
// reads it without a warning.
func TestManPage(t *testing.T) {
	help, err := commandHelp(context.Background(), root(t))
	if err != nil {
		t.Fatal(err)
	}
	page := manPage(help, "1.2.3", time.Unix(0, 0))
	for _, want := range []string{`.B onionchat auth add NAME [flags]`, `.B \-data\-dir \fIdirectory\fR`, "authorize a friend", ".SH OPTIONS", ".SH COMMANDS"} {
		if !strings.Contains(page, want) {
			t.Errorf("the man page lacks %q:\n%s", want, page)
		}
	}
	for l := range strings.Lines(help) {
		if f := strings.Fields(l); len(f) > 0 && strings.HasPrefix(f[0], "-") && !strings.Contains(page, ".B "+roffEscape(f[0])) {
			t.Errorf("flag %s is not in the man page", f[0])
		}
	}
	if _, err := exec.LookPath("groff"); err != nil {
		t.Logf("groff is not installed: the page's syntax is not checked")
		return
	}
	cmd := exec.Command("groff", "-man", "-Tutf8", "-ww", "-z")
	cmd.Stdin = strings.NewReader(page)
	if out, err := cmd.CombinedOutput(); err != nil || len(out) > 0 {
		t.Errorf("groff: %v\n%s", err, out)
	}
}

// The copyright file names every module the binary embeds, with its
// licence text, and a licence file added among the page's embedded files
// appears without any change to the code.
func TestCopyrightFile(t *testing.T) {
	ctx := context.Background()
	var tgt target
	for _, c := range targets {
		if c.name == "arm64" {
			tgt = c
		}
	}
	head, err := copyrightHead(ctx, root(t))
	if err != nil {
		t.Fatal(err)
	}
	got, err := copyrightFile(ctx, root(t), head, tgt)
	if err != nil {
		t.Fatal(err)
	}
	list := exec.Command("go", "list", "-deps", "-f", "{{with .Module}}{{if not .Main}}{{.Path}}{{end}}{{end}}", mainPkg)
	list.Dir = root(t)
	out, err := list.Output()
	if err != nil {
		t.Fatal(err)
	}
	mods := strings.Fields(string(out))
	if len(mods) == 0 {
		t.Fatal("go list names no module: the test proves nothing")
	}
	for _, m := range mods {
		if !bytes.Contains(got, []byte("\nFiles: "+m+"/*\n")) {
			t.Errorf("no paragraph for module %s", m)
		}
	}
	for _, want := range []string{"\nFiles: go/*\n", "Copyright: 2009 The Go Authors", "License: BSD-3-clause\n", "Files: github.com/cretz/bine/*\n"} {
		if !bytes.Contains(got, []byte(want)) {
			t.Errorf("the copyright file lacks %q", want)
		}
	}
	if bytes.Contains(got, []byte("TERMS AND CONDITIONS FOR USE, REPRODUCTION, AND DISTRIBUTION")) ||
		!bytes.Contains(got, []byte("/usr/share/common-licenses/Apache-2.0")) {
		t.Errorf("the Apache licence's terms are copied in full, not pointed to in /usr/share/common-licenses")
	}
	if bytes.Contains(got, []byte("nfpm")) {
		t.Errorf("a module of the packaging tool is in the binary's copyright file")
	}

	// A copy of the sources with a vendored JavaScript library under
	// web/static, its licence beside it.
	src := t.TempDir()
	cp := exec.Command("sh", "-c", `git -C "$0" ls-files -z | (cd "$0" && xargs -0 cp --parents -t "$1")`, root(t), src)
	if out, err := cp.CombinedOutput(); err != nil {
		t.Fatalf("copy the sources: %v\n%s", err, out)
	}
	lib := filepath.Join(src, "web", "static", "vendor", "somelib")
	if err := os.MkdirAll(lib, 0o755); err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(lib, "LICENSE"), []byte("MIT License\n\nCopyright (c) 2026 Some Author\n\nPermission is hereby granted, free of charge, to any person\n"), 0o644)
	os.WriteFile(filepath.Join(lib, "somelib.js"), []byte("export const x = 1;\n"), 0o644)
	if head, err = copyrightHead(ctx, src); err != nil {
		t.Fatal(err)
	}
	withLib, err := copyrightFile(ctx, src, head, tgt)
	if err != nil {
		t.Fatal(err)
	}
	patterns := exec.Command("go", "list", "-f", "{{.EmbedPatterns}}", "./web")
	patterns.Dir = src
	embedded, _ := patterns.Output()
	want := "\nFiles: web/static/vendor/somelib/*\nCopyright: 2026 Some Author\nLicense: Expat\n"
	if !bytes.Contains(withLib, []byte(want)) {
		t.Errorf("a licence file shipped in web/static (embed patterns %s) is not in the copyright file:\n%s", bytes.TrimSpace(embedded), withLib)
	}
}

// The package is the same bytes when built twice from the same inputs.
func TestDebReproducible(t *testing.T) {
	ctx := context.Background()
	bin := filepath.Join(t.TempDir(), "onionchat")
	os.WriteFile(bin, []byte("not really a binary\n"), 0o755)
	var tgt target
	for _, c := range targets {
		if c.name == "armv6" {
			tgt = c
		}
	}
	s := debSource{src: root(t), version: "v1.2.3", date: time.Unix(1764000000, 0)}
	var debs [][]byte
	for range 2 {
		docs, err := makeDebDocs(ctx, s) // anew each time, so that every file is compared
		if err != nil {
			t.Fatal(err)
		}
		p, err := buildDeb(ctx, docs, tgt, bin, t.TempDir())
		if err != nil {
			t.Fatal(err)
		}
		if filepath.Base(p) != "onionchat_1.2.3_armhf.deb" {
			t.Errorf("package file %s, want onionchat_1.2.3_armhf.deb", filepath.Base(p))
		}
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		debs = append(debs, b)
	}
	if !bytes.Equal(debs[0], debs[1]) {
		t.Fatalf("two builds of the package differ (%d and %d bytes)", len(debs[0]), len(debs[1]))
	}
}
