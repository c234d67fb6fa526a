package qrterm

import (
	"strings"
	"testing"
	"unicode/utf8"
)

func TestRender(t *testing.T) {
	s, err := Render("http://25njqamcweflpvkl73j4szahhihoc4xt3ktcgjnpaingr5yhkenl5sid.onion/")
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSuffix(s, "\n"), "\n")
	w := utf8.RuneCountInString(lines[0])
	if w < 25+2*quiet || len(lines) != (w+1)/2 {
		t.Fatalf("%d lines of %d: not a square code", len(lines), w)
	}
	for _, l := range lines {
		if utf8.RuneCountInString(l) != w {
			t.Fatal("ragged lines")
		}
	}
	// The quiet zone is light all round.
	if strings.Trim(lines[0], "█") != "" {
		t.Fatalf("first line is not all light: %q", lines[0])
	}
}
