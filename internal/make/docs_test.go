package main

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// TestDocLinks checks every relative link of the README and docs/: the
// file it names exists, and so does the heading its #anchor names (as
// GitHub makes anchors), so that moving a section never leaves a link
// behind.
func TestDocLinks(t *testing.T) {
	root := filepath.Join("..", "..")
	files, _ := filepath.Glob(filepath.Join(root, "docs", "*.md"))
	files = append(files, filepath.Join(root, "README.md"))
	anchors := map[string]map[string]bool{}
	anchorsOf := func(path string) map[string]bool {
		if a, ok := anchors[path]; ok {
			return a
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return nil
		}
		a := map[string]bool{}
		for _, h := range headings(string(b)) {
			a[slug(h)] = true
		}
		anchors[path] = a
		return a
	}
	link := regexp.MustCompile(`\]\(([^)\s]+)\)`)
	checked := 0
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range link.FindAllStringSubmatch(stripCode(string(b)), -1) {
			target := m[1]
			if strings.Contains(target, "://") || strings.HasPrefix(target, "mailto:") {
				continue
			}
			path, anchor, _ := strings.Cut(target, "#")
			full := f
			if path != "" {
				full = filepath.Join(filepath.Dir(f), path)
				if _, err := os.Stat(full); err != nil {
					t.Errorf("%s: link to %s: no such file", rel(root, f), target)
					continue
				}
			}
			checked++
			if anchor == "" || !strings.HasSuffix(full, ".md") {
				continue
			}
			if !anchorsOf(full)[anchor] {
				t.Errorf("%s: link to %s: %s has no heading #%s", rel(root, f), target, rel(root, full), anchor)
			}
		}
	}
	if checked < 20 {
		t.Fatalf("only %d links checked: the README and docs/ should link to each other", checked)
	}
}

// headings lists the markdown headings of text, outside code blocks.
func headings(text string) []string {
	var out []string
	for _, line := range strings.Split(stripCode(text), "\n") {
		if h, ok := strings.CutPrefix(line, "#"); ok {
			out = append(out, strings.TrimSpace(strings.TrimLeft(h, "#")))
		}
	}
	return out
}

// stripCode blanks fenced code blocks, whose # lines are no headings and
// whose brackets are no links.
func stripCode(text string) string {
	var b strings.Builder
	fence := false
	for _, line := range strings.Split(text, "\n") {
		if strings.HasPrefix(line, "```") {
			fence = !fence
			b.WriteString("\n")
			continue
		}
		if !fence {
			b.WriteString(line)
		}
		b.WriteString("\n")
	}
	return b.String()
}

// slug is a heading's anchor as GitHub makes it: lower case, markup and
// punctuation other than hyphens dropped, spaces made hyphens.
func slug(h string) string {
	h = strings.ToLower(h)
	var b strings.Builder
	for _, r := range h {
		switch {
		case r == ' ':
			b.WriteRune('-')
		case r == '-' || r == '_' || (r >= '0' && r <= '9') || (r >= 'a' && r <= 'z') || r > 127 && !strings.ContainsRune("’‘“”—–…§×", r):
			b.WriteRune(r)
		}
	}
	return b.String()
}

func rel(root, p string) string {
	r, err := filepath.Rel(root, p)
	if err != nil {
		return p
	}
	return r
}
