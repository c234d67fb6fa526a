package main

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strings"
	"time"
)

// manPage renders onionchat(1) from the command's own help (see
// commandHelp): its usage lines become COMMANDS, its flags OPTIONS, so the
// two never disagree. Anything of the help it does not understand fails
// the test of this function, not the release.
func manPage(help, version string, date time.Time) string {
	var b strings.Builder
	fmt.Fprintf(&b, ".TH ONIONCHAT 1 %q %q \"User Commands\"\n", date.UTC().Format("2006-01-02"), "onionchat "+version)
	b.WriteString(".SH NAME\nonionchat \\- self\\-hosted end\\-to\\-end encrypted group chat over Tor\n")
	b.WriteString(".SH SYNOPSIS\n.B onionchat\n[\\fIflags\\fR]\n.br\n.B onionchat\n\\fIcommand\\fR [\\fIarguments\\fR]\n")
	b.WriteString(".SH DESCRIPTION\n" +
		"onionchat starts its own tor and publishes an end\\-to\\-end encrypted chat page and its relay " +
		"as a v3 onion service, or serves it over HTTPS on a LAN. " +
		"The packaged service, onionchat.service, runs it with\n" +
		".IR " + roffEscape(debConfig) + ".\n")
	section := ""
	var flag string
	for l := range strings.Lines(help) {
		l = strings.TrimRight(l, "\n")
		switch {
		case l == "Usage:":
			section = "usage"
			b.WriteString(".SH COMMANDS\n")
			continue
		case l == "Flags:":
			section = "flags"
			b.WriteString(".SH OPTIONS\n")
			continue
		case strings.TrimSpace(l) == "":
			continue
		}
		switch section {
		case "usage":
			// "  onionchat address [flags]          print the stored ..."
			t := strings.TrimSpace(l)
			cmd, desc := t, ""
			if i := strings.Index(t, "  "); i >= 0 {
				cmd, desc = t[:i], strings.TrimSpace(t[i:])
			} else if i := strings.Index(t, "] "); i >= 0 { // "auth remove NAME [--open] revoke ..."
				cmd, desc = t[:i+1], strings.TrimSpace(t[i+1:])
			}
			fmt.Fprintf(&b, ".TP\n.B %s\n%s\n", roffEscape(cmd), roffEscape(desc))
		case "flags":
			// Go's flag package: "  -name type" then "    \tusage".
			if strings.HasPrefix(l, "  -") {
				flag = strings.TrimSpace(l)
				name, arg, _ := strings.Cut(flag, " ")
				fmt.Fprintf(&b, ".TP\n.B %s", roffEscape(name))
				if arg != "" {
					fmt.Fprintf(&b, " \\fI%s\\fR", roffEscape(arg))
				}
				b.WriteString("\n")
			} else {
				fmt.Fprintf(&b, "%s\n", roffEscape(strings.TrimSpace(l)))
			}
		}
	}
	b.WriteString(".SH FILES\n" +
		".TP\n.I " + roffEscape(debConfig) + "\nthe service's configuration; every key is commented out at its default\n" +
		".TP\n.I /var/lib/onionchat\nthe service's data: the onion key (the address), client keys, tor's state; kept by apt remove, deleted by apt purge\n" +
		".SH SEE ALSO\n.BR tor (1),\n.BR systemctl (1)\n")
	return b.String()
}

// roffEscape makes s safe as roff text: backslashes and hyphens escaped,
// and a line that would start with a control character guarded.
func roffEscape(s string) string {
	s = strings.NewReplacer(`\`, `\e`, "-", `\-`).Replace(s)
	if strings.HasPrefix(s, ".") || strings.HasPrefix(s, "'") {
		s = `\&` + s
	}
	return s
}

// licenceFile matches the names of licence files: LICENSE, LICENCE,
// COPYING, NOTICE, PATENTS, UNLICENSE, with any suffix (LICENSE.md,
// LICENSE-MIT, COPYING.txt).
var licenceFile = regexp.MustCompile(`(?i)^(licen[cs]e|copying|notice|patents|unlicense)([._-].*)?$`)

// copyrightHead returns the paragraphs of the machine-readable copyright
// file that no target changes, from the sources in src: the header,
// onionchat's own licence (a licence file at the module root), and the Go
// runtime and standard library, with their licence as the toolchain ships
// it.
func copyrightHead(ctx context.Context, src string) (string, error) {
	var b strings.Builder
	b.WriteString("Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/\n" +
		"Upstream-Name: onionchat\nSource: " + debHomepage + "\n" +
		"Comment: /usr/bin/onionchat is one static Go program. It embeds the Go\n" +
		" runtime and standard library, the Go modules below and the chat page's\n" +
		" files; each paragraph gives a licence as it ships with what it covers.\n")
	own, err := licenceTexts(src)
	if err != nil {
		return "", fmt.Errorf("release: %w", err)
	}
	if own == "" {
		own = "The onionchat repository has no licence file at its root yet; until\n" +
			"one is added, the authors grant no licence beyond what the law allows."
		paragraph(&b, "*", "the onionchat authors", "no-licence-stated", own, "")
	} else {
		paragraph(&b, "*", copyrightLines(own, "the onionchat authors"), licenceName(own), own, "")
	}

	goroot, goVersion := runtime.GOROOT(), runtime.Version()
	if out, err := exec.CommandContext(ctx, "go", "env", "GOROOT", "GOVERSION").Output(); err == nil {
		if l := strings.Split(strings.TrimSpace(string(out)), "\n"); len(l) == 2 {
			goroot, goVersion = strings.TrimSpace(l[0]), strings.TrimSpace(l[1])
		}
	}
	std, err := licenceTexts(goroot)
	if err != nil || std == "" {
		return "", fmt.Errorf("release: no licence file in GOROOT %s: %v", goroot, err)
	}
	paragraph(&b, "go/*", copyrightLines(std, "The Go Authors"), licenceName(std), std,
		"The Go runtime and standard library ("+goVersion+"), compiled in.")
	return b.String(), nil
}

// copyrightFile returns the machine-readable copyright file of the package
// of target t: head (copyrightHead), then one paragraph for each thing the
// binary embeds beyond Go's runtime and standard library, from the sources
// in src, with the licence text as it ships there: every module `go list
// -deps` names for the target, and every licence file among the embedded
// files of onionchat's own packages (the page's third-party JavaScript
// ships its licence beside it, so a library added there is picked up with
// no change here).
func copyrightFile(ctx context.Context, src, head string, t target) ([]byte, error) {
	src, err := filepath.Abs(src)
	if err != nil {
		return nil, fmt.Errorf("release: %w", err)
	}
	pkgs, err := goListDeps(ctx, src, t)
	if err != nil {
		return nil, err
	}
	var b strings.Builder
	b.WriteString(head)

	seen := map[string]bool{}
	var embedded []string // directories of licence files among embedded files, relative to src
	for _, p := range pkgs {
		m := p.Module
		switch {
		case p.Standard || m == nil:
		case m.Main:
			rel, err := filepath.Rel(src, p.Dir)
			if err != nil {
				return nil, fmt.Errorf("release: %w", err)
			}
			for _, f := range p.EmbedFiles {
				if licenceFile.MatchString(path.Base(f)) {
					embedded = append(embedded, filepath.ToSlash(filepath.Join(rel, f)))
				}
			}
		case !seen[m.Path]:
			seen[m.Path] = true
			dir, version := m.Dir, m.Version
			if m.Replace != nil {
				dir, version = m.Replace.Dir, m.Replace.Version
			}
			text, err := licenceTexts(dir)
			if err != nil {
				return nil, fmt.Errorf("release: %w", err)
			}
			if text == "" {
				return nil, fmt.Errorf("release: module %s %s ships no licence file; the package cannot say under what terms it is embedded", m.Path, version)
			}
			paragraph(&b, m.Path+"/*", copyrightLines(text, "the authors of "+m.Path), licenceName(text), text,
				"Go module "+m.Path+" "+version+", compiled in.")
		}
	}
	slices.Sort(embedded)
	byDir := map[string][]string{}
	var dirs []string
	for _, f := range embedded {
		d := path.Dir(f)
		if byDir[d] == nil {
			dirs = append(dirs, d)
		}
		byDir[d] = append(byDir[d], f)
	}
	for _, d := range dirs {
		var texts []string
		for _, f := range byDir[d] {
			t, err := os.ReadFile(filepath.Join(src, f))
			if err != nil {
				return nil, fmt.Errorf("release: %w", err)
			}
			texts = append(texts, strings.TrimSpace(string(t)))
		}
		text := strings.Join(texts, "\n\n")
		paragraph(&b, d+"/*", copyrightLines(text, "the authors of "+d), licenceName(text), text,
			"Files of the page, embedded in the binary and served to browsers; licence as shipped in "+strings.Join(byDir[d], ", ")+".")
	}
	return []byte(b.String()), nil
}

// licenceTexts reads the licence files (licenceFile) at the top of dir,
// sorted by name, and joins their texts; "" if there are none. The
// package's copyright file and the page's LICENSES.txt are made with it.
func licenceTexts(dir string) (string, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return "", fmt.Errorf("licences of %s: %w", dir, err)
	}
	var texts []string
	for _, e := range entries {
		if e.Type().IsRegular() && licenceFile.MatchString(e.Name()) {
			b, err := os.ReadFile(filepath.Join(dir, e.Name()))
			if err != nil {
				return "", err
			}
			texts = append(texts, strings.TrimSpace(string(b)))
		}
	}
	return strings.Join(texts, "\n\n"), nil
}

// paragraph writes one Files paragraph of a DEP-5 copyright file: the
// licence's short name on the License line, its full text below.
func paragraph(b *strings.Builder, files, copyright, name, text, comment string) {
	fmt.Fprintf(b, "\nFiles: %s\nCopyright: %s\nLicense: %s\n", files, copyright, name)
	b.WriteString(field(commonLicences(text)))
	if comment != "" {
		b.WriteString("Comment: " + strings.TrimSpace(field(comment)) + "\n")
	}
}

// field formats text as the continuation lines of a DEP-5 field: each
// line indented by a space, an empty line as " .".
func field(text string) string {
	var b strings.Builder
	for l := range strings.Lines(strings.TrimSpace(text)) {
		l = strings.TrimRight(strings.ReplaceAll(l, "\t", "    "), " \r\n")
		if l == "" {
			l = "."
		}
		b.WriteString(" " + l + "\n")
	}
	return b.String()
}

// copyrightLines returns the "Copyright ..." lines of a licence text,
// joined for a Copyright field, or fallback if it has none (the Apache
// licence, say, names no holder).
func copyrightLines(text, fallback string) string {
	var lines []string
	for l := range strings.Lines(text) {
		l = strings.TrimSpace(l)
		if rest, ok := strings.CutPrefix(l, "Copyright"); ok && rest != "" && !strings.Contains(l, "[yyyy]") &&
			!strings.Contains(l, "{yyyy}") && !strings.HasPrefix(strings.TrimSpace(rest), "notice") && !slices.Contains(lines, l) {
			lines = append(lines, strings.TrimSpace(strings.TrimPrefix(strings.TrimPrefix(rest, " (c)"), " ©")))
		}
	}
	if len(lines) == 0 {
		return fallback
	}
	return strings.Join(lines, "\n ")
}

// licenceSigns are words every copy of a licence has, by the licence's
// Debian short name.
var licenceSigns = []struct{ name, sign string }{
	{"Apache-2.0", "Apache License Version 2.0"},
	{"Apache-2.0", "Apache License, Version 2.0"},
	{"MPL-2.0", "Mozilla Public License Version 2.0"},
	{"Expat", "Permission is hereby granted, free of charge"},
	{"ISC", "Permission to use, copy, modify, and/or distribute"},
	{"BSD-3-clause", "Neither the name"},
	{"BSD-2-clause", "Redistribution and use in source and binary forms"},
}

// licenceName gives the Debian short name of a licence text, from the
// words every copy of that licence has, in the order they appear ("A and
// B" for a file holding two); "other" when it is none of the usual ones
// (the text is in the file all the same).
func licenceName(text string) string {
	t := strings.Join(strings.Fields(text), " ")
	at := map[string]int{}
	for _, l := range licenceSigns {
		i := strings.Index(t, l.sign)
		if i < 0 {
			continue
		}
		if l.name == "BSD-2-clause" && at["BSD-3-clause"] > 0 {
			continue
		}
		if j, ok := at[l.name]; !ok || i+1 < j {
			at[l.name] = i + 1
		}
	}
	if at["BSD-3-clause"] > 0 && strings.Count(t, "Redistribution and use in source and binary forms") <= 1 {
		delete(at, "BSD-2-clause")
	}
	if at["BSD-3-clause"] > 0 && !strings.Contains(t, "Redistribution and use in source and binary forms") {
		delete(at, "BSD-3-clause") // "Neither the name" alone is no BSD licence
	}
	var names []string
	for n := range at {
		names = append(names, n)
	}
	if len(names) == 0 {
		return "other"
	}
	slices.SortFunc(names, func(a, b string) int { return at[a] - at[b] })
	return strings.Join(names, " and ")
}

// apacheTerms finds the terms of the Apache License 2.0 in a licence text
// (title to END OF TERMS AND CONDITIONS, and the appendix on applying it
// if it follows), which Debian ships once, in /usr/share/common-licenses.
var apacheTerms = regexp.MustCompile(`(?s)[ \t]*Apache License\s*\n\s*Version 2\.0, January 2004.*?END OF TERMS AND CONDITIONS(\s*APPENDIX: How to apply the Apache License.*?limitations under the License\.)?`)

// commonLicences replaces the full terms of a licence that Debian ships in
// /usr/share/common-licenses by a pointer there, as Debian policy asks.
func commonLicences(text string) string {
	return apacheTerms.ReplaceAllLiteralString(text,
		"On Debian systems, the full text of the Apache License, Version 2.0\ncan be found in /usr/share/common-licenses/Apache-2.0.")
}

// changelog writes the package's changelog (Debian's format, native
// package): one entry for version v, listing the commits since the last
// tag (at most 40), or naming the version alone without git history.
func changelog(ctx context.Context, src, v string, date time.Time) string {
	var items []string
	rng := []string{"-40"}
	tagCmd := exec.CommandContext(ctx, "git", "describe", "--tags", "--abbrev=0")
	tagCmd.Dir = src
	if tag, err := tagCmd.Output(); err == nil && len(bytes.TrimSpace(tag)) > 0 {
		rng = []string{"-40", strings.TrimSpace(string(tag)) + "..HEAD"}
	}
	logCmd := exec.CommandContext(ctx, "git", append([]string{"log", "--no-merges", "--format=%s"}, rng...)...)
	logCmd.Dir = src
	if out, err := logCmd.Output(); err == nil {
		for l := range strings.Lines(string(out)) {
			if l = strings.TrimSpace(l); l != "" {
				items = append(items, l)
			}
		}
	}
	if len(items) == 0 {
		items = []string{"Release " + v + "."}
	}
	var b strings.Builder
	fmt.Fprintf(&b, "onionchat (%s) unstable; urgency=medium\n\n", v)
	for _, it := range items {
		b.WriteString(wrap(it, "  * ", "    ", 78))
	}
	fmt.Fprintf(&b, "\n -- %s  %s\n", debMaint, date.UTC().Format("Mon, 02 Jan 2006 15:04:05 -0700"))
	return b.String()
}

// wrap fills text into lines of at most width, the first starting with
// first and the others with rest.
func wrap(text, first, rest string, width int) string {
	var b strings.Builder
	line := first
	for _, w := range strings.Fields(text) {
		if len(line)+len(w)+1 > width && strings.TrimSpace(line) != strings.TrimSpace(first) {
			b.WriteString(strings.TrimRight(line, " ") + "\n")
			line = rest
		}
		if line != first && line != rest {
			line += " "
		}
		line += w
	}
	b.WriteString(line + "\n")
	return b.String()
}
