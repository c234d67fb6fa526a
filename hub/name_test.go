package hub

import (
	"golang.org/x/text/unicode/runenames"
	"strings"
	"testing"
	"unicode/utf8"

	"golang.org/x/text/secure/precis"
)

func TestPrepareName(t *testing.T) {
	for _, tc := range []struct {
		in, want string
		err      error // nil: accepted as want
		errHas   string
	}{
		{in: "Alice", want: "Alice"},
		{in: "  bob  smith ", want: "bob smith"},
		{in: "bob\u00a0\u2003smith", want: "bob smith"},         // other spaces become one ASCII space
		{in: "\uff21\uff4c\uff49\uff43\uff45", want: "Alice"},   // fullwidth, NFKC
		{in: "e\u0301", want: "\u00e9"},                         // NFKC composes
		{in: "Ünïcödé", want: "Ünïcödé"},                        // Latin with marks
		{in: "Дмитрий", want: "Дмитрий"},                        // one script: Cyrillic
		{in: "山田たろう", want: "山田たろう"},                            // Han with Hiragana
		{in: "東京タワー", want: "東京タワー"},                            // Han with Katakana
		{in: "김철수 金", want: "김철수 金"},                            // Hangul with Han
		{in: "ㄅㄆ中文", want: "ㄅㄆ中文"},                              // Bopomofo with Han
		{in: "R2-D2 :)", want: "R2-D2 :)"},                      // digits and punctuation are common to all
		{in: "a\u0301\u0302\u0303", want: "\u00e1\u0302\u0303"}, // three marks in a row (one composes)
		{in: strings.Repeat("é", maxNameRunes), want: strings.Repeat("é", maxNameRunes)},
		{in: "", err: errNameEmpty},
		{in: "   ", err: errNameEmpty},
		{in: strings.Repeat("é", maxNameRunes+1), err: errNameLength},
		{in: strings.Repeat(" ", maxNameInput) + "a", err: errNameLength},
		{in: "\xff", err: errNameInvisible},
		{in: "a\x00", err: errNameInvisible},
		{in: "a\nb", err: errNameInvisible},
		{in: "Alice\u034f", err: errNameInvisible},           // combining grapheme joiner
		{in: "Alice\ufe0f", err: errNameInvisible},           // variation selector
		{in: "Alice\U000E0100", err: errNameInvisible},       // variation selector supplement
		{in: "\u202eecilA", err: errNameInvisible},           // right-to-left override
		{in: "Al\u200dice", err: errNameInvisible},           // zero-width joiner
		{in: "Al\u200bice", err: errNameInvisible},           // zero-width space
		{in: "\u3164", err: errNameInvisible},                // Hangul filler
		{in: "a\u3164", err: errNameInvisible},               // Hangul filler
		{in: "\u115f", err: errNameInvisible},                // Hangul choseong filler
		{in: "\uffa0", err: errNameInvisible},                // halfwidth Hangul filler
		{in: "a\u00ad", err: errNameInvisible},               // soft hyphen
		{in: "\u2800", err: errNameBlank},                    // braille blank alone
		{in: "Alice\u2800", err: errNameBlank},               // braille blank
		{in: "!!!", err: errNameNoLetter},                    // no letter or digit
		{in: "x\u0301\u0302\u0303\u0304", err: errNameMarks}, // four marks in a row
		{in: "Al\u0456ce", errHas: "Cyrillic and Latin"},     // Cyrillic і
		{in: "\u0410lice", errHas: "Cyrillic and Latin"},     // Cyrillic А
		{in: "paypal ρ", errHas: "Greek and Latin"},
		{in: "김たろう", errHas: "Hangul and Hiragana"},
	} {
		got, err := prepareName(tc.in)
		switch {
		case tc.err == nil && tc.errHas == "":
			if err != nil || got != tc.want {
				t.Errorf("prepareName(%+q) = %+q, %v; want %+q", tc.in, got, err, tc.want)
			}
		case tc.err != nil:
			if err != tc.err {
				t.Errorf("prepareName(%+q) = %+q, %v; want error %q", tc.in, got, err, tc.err)
			}
		default:
			if err == nil || !strings.Contains(err.Error(), tc.errHas) {
				t.Errorf("prepareName(%+q) = %+q, %v; want an error saying %q", tc.in, got, err, tc.errHas)
			}
		}
	}
}

func TestConfusable(t *testing.T) {
	alice := keysOf("Alice")
	for _, tc := range []struct {
		name string
		want bool
	}{
		{"AIice", true}, // capital I for l
		{"A1ice", true}, // digit one for l
		{"ALICE", true}, // same key: name_taken catches it first
		{"aIice", true}, // looks like "alice", which is Alice
		{"Alicia", false},
		{"Bob", false},
	} {
		n, err := prepareName(tc.name)
		if err != nil {
			t.Fatalf("%q: %v", tc.name, err)
		}
		if got := keysOf(n).confusable(alice); got != tc.want {
			t.Errorf("%q confusable with Alice: %v, want %v", tc.name, got, tc.want)
		}
	}
	// A whole-script look-alike: Cyrillic letters only.
	if !keysOf("сосо").confusable(keysOf("coco")) {
		t.Error("Cyrillic сосо is not confusable with Latin coco")
	}
	// What an outsider tried (issue 25), each beside the name it imitates;
	// and names that merely share letters stay apart.
	for _, tc := range []struct {
		a, b string
		want bool
	}{
		{"Аӏісе", "Alice", true}, {"ᴀlice", "Alice", true}, {"b0b", "bob", true}, {"0scar", "oscar", true},
		{"clave", "dave", true}, {"ĸim", "kim", true}, {"ᴛom", "tom", true}, {"ᴍax", "max", true},
		{"dave", "clara", false}, {"kim", "kin", false}, {"tom", "torn", true}, {"Ioan", "loan", true},
		{"Zoë", "Zoe", false}, {"bob", "boo", false},
	} {
		a, err1 := prepareName(tc.a)
		b, err2 := prepareName(tc.b)
		if err1 != nil || err2 != nil {
			t.Fatalf("%q, %q: %v %v", tc.a, tc.b, err1, err2)
		}
		if got := keysOf(a).confusable(keysOf(b)); got != tc.want {
			t.Errorf("%q beside %q: confusable %v, want %v (skeletons %q %q)", tc.a, tc.b, got, tc.want, keysOf(a).skelLower, keysOf(b).skelLower)
		}
	}
}

// TestLookAlikesTable: every entry of lookAlikes but kra, turned w and "d"
// is a Latin small capital by its Unicode name, mapped to its letter.
func TestLookAlikesTable(t *testing.T) {
	for r, to := range lookAlikes {
		if r == 'ĸ' || r == 'ʍ' || r == 'd' {
			continue
		}
		name := runenames.Name(r)
		letter, ok := strings.CutPrefix(name, "LATIN LETTER SMALL CAPITAL ")
		if !ok || len(letter) != 1 || strings.ToLower(letter) != map[string]string{"cl": "d"}[to]+strings.TrimPrefix(to, "cl") {
			t.Errorf("%U %s maps to %q", r, name, to)
		}
	}
}

// FuzzPrepareName checks that a prepared name is stable (preparing it
// again gives itself), keeps to the length and script rules, and compares
// equal to its input under PRECIS.
func FuzzPrepareName(f *testing.F) {
	for _, s := range []string{"Alice", " bob  smith ", "Al\u0456ce", "Ａｌｉｃｅ", "a\u0301\u0301\u0301\u0301", "\u3164", "山田たろう", "\u2800", "ǅ"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		p, err := prepareName(s)
		if err != nil {
			if p != "" {
				t.Fatalf("prepareName(%+q) = %+q with error %v", s, p, err)
			}
			return
		}
		if !utf8.ValidString(p) || p == "" || utf8.RuneCountInString(p) > maxNameRunes || strings.ContainsRune(p, '\u2800') {
			t.Fatalf("prepareName(%+q) = %+q breaks a rule", s, p)
		}
		again, err := prepareName(p)
		if err != nil || again != p {
			t.Fatalf("prepareName(%+q) = %+q, but preparing that gives %+q, %v", s, p, again, err)
		}
		if !precis.Nickname.Compare(s, p) {
			t.Fatalf("prepareName(%+q) = %+q, which PRECIS compares unequal", s, p)
		}
		k := keysOf(p)
		if !k.confusable(k) {
			t.Fatalf("%+q is not confusable with itself", p)
		}
	})
}
