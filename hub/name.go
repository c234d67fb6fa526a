package hub

import (
	"errors"
	"slices"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"

	"go.mau.fi/util/confusable"
	"golang.org/x/text/cases"
	"golang.org/x/text/secure/precis"
)

// maxNameInput bounds the bytes of a name before preparation: a name that
// long cannot be maxNameRunes characters once prepared, and PRECIS does
// several passes over what it is given.
const maxNameInput = 1024

// maxMarks is the longest run of combining marks a name may have.
const maxMarks = 3

// Why prepareName refuses a name; each is the message of a bad_name error.
var (
	errNameEmpty     = errors.New("a name needs at least one visible character")
	errNameLength    = errors.New("a name has at most " + strconv.Itoa(maxNameRunes) + " characters")
	errNameInvisible = errors.New("a name cannot contain control, format or invisible characters (such as zero-width joiners, variation selectors, direction overrides or Hangul fillers)")
	errNameNoLetter  = errors.New("a name needs at least one letter or digit")
	errNameBlank     = errors.New("a name cannot contain blank-looking symbols such as U+2800 (braille blank)")
	errNameMarks     = errors.New("a name has at most " + strconv.Itoa(maxMarks) + " combining marks in a row")
)

// prepareName returns a member name as the hub stores and shows it, or an
// error whose message says which rule of docs/protocol.md §7 the name
// breaks: the PRECIS Nickname profile (RFC 8266: spaces mapped and
// collapsed, NFKC, no control, format or default-ignorable characters),
// then 1 to maxNameRunes characters, at least one letter or digit, no
// U+2800, at most 3 combining marks in a row, and a single script
// (characters common to all scripts aside; Han with Hiragana and Katakana,
// with Hangul or with Bopomofo). Whether the name is taken or looks like
// another member's depends on the room: the hub checks that at join.
func prepareName(s string) (string, error) {
	if !utf8.ValidString(s) {
		return "", errNameInvisible
	}
	if len(s) > maxNameInput {
		return "", errNameLength
	}
	p, err := precis.Nickname.String(s)
	if err != nil {
		if strings.TrimSpace(s) == "" {
			return "", errNameEmpty
		}
		return "", errNameInvisible
	}
	if p == "" {
		return "", errNameEmpty
	}
	if utf8.RuneCountInString(p) > maxNameRunes {
		return "", errNameLength
	}
	letter := false
	marks := 0
	var scripts []string
	for _, r := range p {
		if r == '\u2800' {
			return "", errNameBlank
		}
		if unicode.Is(unicode.M, r) {
			if marks++; marks > maxMarks {
				return "", errNameMarks
			}
		} else {
			marks = 0
		}
		letter = letter || unicode.IsLetter(r) || unicode.IsDigit(r)
		if sc := scriptOf(r); sc != "" && !slices.Contains(scripts, sc) {
			scripts = append(scripts, sc)
		}
	}
	if !letter {
		return "", errNameNoLetter
	}
	if !oneScript(scripts) {
		slices.Sort(scripts)
		return "", errors.New("a name is written in one script, not a mix (this one has " + strings.Join(scripts, " and ") + ")")
	}
	return p, nil
}

// scriptOf names the script of r, or "" for characters common to all
// scripts (Common, Inherited) and those in none.
func scriptOf(r rune) string {
	if r < utf8.RuneSelf {
		if 'a' <= r && r <= 'z' || 'A' <= r && r <= 'Z' {
			return "Latin"
		}
		return ""
	}
	if unicode.Is(unicode.Common, r) || unicode.Is(unicode.Inherited, r) {
		return ""
	}
	for _, name := range scriptNames {
		if unicode.Is(unicode.Scripts[name], r) {
			return name
		}
	}
	return ""
}

// scriptNames lists the standard library's scripts, most used first, then
// the rest in order, without Common and Inherited.
var scriptNames = func() []string {
	first := []string{"Latin", "Cyrillic", "Greek", "Han", "Arabic", "Hiragana", "Katakana", "Hangul", "Devanagari", "Hebrew", "Thai"}
	var rest []string
	for name := range unicode.Scripts {
		if name != "Common" && name != "Inherited" && !slices.Contains(first, name) {
			rest = append(rest, name)
		}
	}
	slices.Sort(rest)
	return append(first, rest...)
}()

// oneScript reports whether a name's scripts are one script, or Han with
// those written beside it in Japanese, Korean or Chinese (UTS #39's
// "highly restrictive" level).
func oneScript(scripts []string) bool {
	if len(scripts) <= 1 {
		return true
	}
	for _, set := range [][]string{{"Han", "Hiragana", "Katakana"}, {"Han", "Hangul"}, {"Han", "Bopomofo"}} {
		all := true
		for _, sc := range scripts {
			all = all && slices.Contains(set, sc)
		}
		if all {
			return true
		}
	}
	return false
}

// nameKeys are what a room compares a prepared name by: its PRECIS
// comparison key (case-folded; equal keys are the same member) and two
// look-alike skeletons (skeleton), of the name as written and of its key,
// for look-alikes. The hub and the cluster's claims both compare by them.
type nameKeys struct {
	key, skel, skelLower string
}

func keysOf(prepared string) nameKeys {
	key, err := precis.Nickname.CompareKey(prepared)
	if err != nil { // cannot happen for a prepared name; compare it as it is
		key = prepared
	}
	return nameKeys{key: key, skel: skeleton(prepared), skelLower: skeleton(key)}
}

// confusable reports whether two names look alike: a skeleton of one, as
// written or lower-cased, equals a skeleton of the other.
func (a nameKeys) confusable(b nameKeys) bool {
	return a.skel == b.skel || a.skel == b.skelLower || a.skelLower == b.skel || a.skelLower == b.skelLower
}

var fold = cases.Fold()

// skeleton is what two names that look alike share: the UTS #39 skeleton
// (Unicode's current confusables data, which maps whole-script look-alikes
// such as Cyrillic "Аӏісе" to "Alice"), then lookAlikes and the skeleton
// again, case-folded, so that "b0b" (skeleton "bOb") meets "bob". Taken of
// a name as written it keeps "I" beside "l"; of its case-folded key it
// meets the lower-case forms.
func skeleton(s string) string {
	t := confusable.Skeleton(s)
	var b strings.Builder
	for _, r := range t {
		if v, ok := lookAlikes[r]; ok {
			b.WriteString(v)
		} else {
			b.WriteRune(r)
		}
	}
	return fold.String(confusable.Skeleton(b.String()))
}

// lookAlikes are what Unicode's table keeps apart but a name shows as the
// same letter: the Latin small capitals it leaves unmapped or makes
// prototypes of their own (ᴛ for Greek tau and Cyrillic te), written at
// the height of lower case in the capital's shape; kra, which the table
// makes the prototype of Greek kappa; turned w, the prototype it gives
// small capital M and Cyrillic м; and "d", which "cl" imitates as "rn"
// imitates "m" in the table.
var lookAlikes = map[rune]string{
	'ᴀ': "a", 'ʙ': "b", 'ᴅ': "cl", 'ᴇ': "e", 'ꜰ': "f", 'ɢ': "g", 'ʜ': "h", 'ᴊ': "j", 'ʟ': "l",
	'ɴ': "n", 'ᴘ': "p", 'ꞯ': "q", 'ʀ': "r", 'ᴛ': "t",
	'ĸ': "k", 'ʍ': "m", 'd': "cl",
}

// nameKey returns the comparison key of a name as a client wrote it (a
// msg's "to"), or false if it is no valid name.
func nameKey(s string) (string, bool) {
	if len(s) > maxNameInput {
		return "", false
	}
	k, err := precis.Nickname.CompareKey(s)
	return k, err == nil && k != ""
}

// validRoomID reports whether s is a room id: roomIDLen characters of the
// unpadded base64url alphabet.
func validRoomID(s string) bool {
	if len(s) != roomIDLen {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('A' <= c && c <= 'Z' || 'a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '-' || c == '_') {
			return false
		}
	}
	return true
}
