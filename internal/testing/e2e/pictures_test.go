package e2e

import (
	"bytes"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"hash/crc32"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/onionchat/onionchat/internal/testing/need"
)

// sample is one of web/jstest/testdata's pictures.
type sample struct{ file, typ string }

// leakySamples carry location, camera and author data in every place a
// picture file can hide it (web/jstest/testdata/leaky.mjs), the photo.*
// ones in the usual places.
var leakySamples = []sample{
	{"leaky.jpg", "image/jpeg"}, {"leaky.png", "image/png"}, {"leaky.gif", "image/gif"}, {"leaky.webp", "image/webp"},
	{"photo.jpg", "image/jpeg"}, {"photo.png", "image/png"}, {"photo.gif", "image/gif"}, {"photo.webp", "image/webp"},
}

func testdata(t *testing.T, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "..", "..", "web", "jstest", "testdata", name))
	must(t, err)
	return b
}

// secretWords are what the samples' metadata says, in any of its places.
var secretWords = []string{"TestCam", "Model X", "SN123456", "Alice Example", "Paris", "secret comment", "GPS", "48.8584", "TCAM", "MDLX"}

// exiftoolKeeps are the tags exiftool may find in a cleaned picture: what
// the file is, its size and how it is coded, and a JPEG's orientation.
// Any other tag is data the picture did not need to be drawn.
var exiftoolKeeps = map[string][]string{
	"File": {"FileType", "FileTypeExtension", "MIMEType", "ImageWidth", "ImageHeight", "EncodingProcess",
		"BitsPerSample", "ColorComponents", "YCbCrSubSampling", "ExifByteOrder"},
	"JFIF":  {"JFIFVersion", "ResolutionUnit", "XResolution", "YResolution"},
	"IFD0":  {"Orientation"},
	"Adobe": {"DCTEncodeVersion", "APP14Flags0", "APP14Flags1", "ColorTransform"},
	"PNG": {"ImageWidth", "ImageHeight", "BitDepth", "ColorType", "Compression", "Filter", "Interlace", "Gamma",
		"WhitePointX", "WhitePointY", "RedX", "RedY", "GreenX", "GreenY", "BlueX", "BlueY", "SRGBRendering",
		"PixelsPerUnitX", "PixelsPerUnitY", "PixelUnits", "AnimationFrames", "AnimationPlays"},
	"GIF": {"GIFVersion", "ImageWidth", "ImageHeight", "HasColorMap", "ColorResolutionDepth", "BitsPerPixel",
		"BackgroundColor", "AnimationIterations", "FrameCount", "Duration"},
	"RIFF": {"WebP_Flags", "ImageWidth", "ImageHeight", "VP8Version", "HorizontalScale", "VerticalScale",
		"AnimationLoopCount", "BackgroundColor"},
	"Composite": {"ImageSize", "Megapixels"},
}

// metadataLeaks reads b with exiftool, an independent reader that knows
// every metadata format (it inflates compressed text, reads ICC profiles,
// XMP in any container, unknown chunks with -u), and returns every tag it
// finds beyond exiftoolKeeps, and every secret word in its findings or
// in b's bytes.
func metadataLeaks(t *testing.T, b []byte) []string {
	t.Helper()
	exiftool := need.Tool(t, "exiftool")
	f := filepath.Join(t.TempDir(), "picture")
	must(t, os.WriteFile(f, b, 0o600))
	out, err := exec.Command(exiftool, "-j", "-a", "-u", "-ee", "-G1", f).Output()
	if err != nil {
		t.Fatalf("exiftool: %v", err)
	}
	var tags []map[string]any
	must(t, json.Unmarshal(out, &tags))
	var leaks []string
	for k, v := range tags[0] {
		group, tag, _ := strings.Cut(k, ":")
		if k == "SourceFile" || group == "System" || group == "ExifTool" && tag != "Warning" || slices.Contains(exiftoolKeeps[group], tag) {
			continue
		}
		leaks = append(leaks, fmt.Sprintf("%s=%v", k, v))
	}
	for _, w := range secretWords {
		if bytes.Contains(out, []byte(w)) || bytes.Contains(b, []byte(w)) {
			leaks = append(leaks, "“"+w+"”")
		}
	}
	slices.Sort(leaks)
	return leaks
}

// pngOfSize is a PNG whose header says w×h pixels, with a small (not
// decodable) IDAT: a picture a page must not try to draw at that size.
func pngOfSize(w, h uint32) []byte {
	chunk := func(typ string, data []byte) []byte {
		b := binary.BigEndian.AppendUint32(nil, uint32(len(data)))
		td := append([]byte(typ), data...)
		return binary.BigEndian.AppendUint32(append(b, td...), crc32.ChecksumIEEE(td))
	}
	ihdr := binary.BigEndian.AppendUint32(binary.BigEndian.AppendUint32(nil, w), h)
	ihdr = append(ihdr, 8, 2, 0, 0, 0)
	out := []byte("\x89PNG\r\n\x1a\n")
	out = append(out, chunk("IHDR", ihdr)...)
	out = append(out, chunk("IDAT", []byte{0x78, 0x9c, 0x03, 0x00, 0x00, 0x00, 0x00, 0x01})...)
	return append(out, chunk("IEND", nil)...)
}

// cleanedInPage returns what the page's own cleaning, run in d's
// browser, makes of b: the bytes a page sends for it (b itself if the
// page does not take it for a picture).
func cleanedInPage(t *testing.T, d driver, b []byte) []byte {
	t.Helper()
	must(t, d.eval2(fmt.Sprintf(`(window.__cleaned = null, import("/strip.mjs").then((m) => {
		const bin = atob(%s);
		const u = new Uint8Array(bin.length);
		for (let i = 0; i < bin.length; i++) u[i] = bin.charCodeAt(i);
		let r;
		try { r = m.stripMetadata(u); } catch (e) { window.__cleaned = "error: " + e.message; return; }
		const out = r ? r.bytes : u;
		let s = "";
		for (let i = 0; i < out.length; i++) s += String.fromCharCode(out[i]);
		window.__cleaned = btoa(s);
	}))`, js(base64.StdEncoding.EncodeToString(b)))))
	must(t, d.waitFor("the page's cleaning", `window.__cleaned !== null`, waitShort))
	v, err := d.eval(`window.__cleaned`)
	must(t, err)
	s := fmt.Sprint(v)
	if strings.HasPrefix(s, "error: ") {
		t.Fatalf("the page's cleaning: %s", s)
	}
	r, err := base64.StdEncoding.DecodeString(s)
	must(t, err)
	return r
}

// picturesScenario: alice sends every sample picture to bob, as a person
// picking the file would. What bob's page received and checked (by the
// SHA-256 it checked the bytes against, which the test matches with the
// page's own cleaning run in the same browser) is read by exiftool: no
// location, camera or author data may remain, and bob sees each as a
// picture (what drawing needs was kept). A HEIC photo, which the page
// cannot clean, is not sent until alice chooses to send it as a file; a
// picture too large to draw is offered to bob as a download.
func picturesScenario(t *testing.T, alice, bob driver, browser string) {
	const pass = "quill-harbor-nimbus-31"
	join(t, alice, "", "alice", pass)
	join(t, bob, "", "bob", pass)

	for _, s := range leakySamples {
		orig := testdata(t, s.file)
		if l := metadataLeaks(t, orig); len(l) < 3 {
			t.Fatalf("the sample %s lacks its metadata (exiftool finds %v): the check below would prove nothing", s.file, l)
		}
		giveFile(t, alice, s.file, s.typ, orig)
		item := fileItemJS(s.file)
		mustSee(t, bob, "bob", bob.waitFor("bob to receive "+s.file, item+`?.dataset.sha256 > ""`, waitLong))
		got := shownSHA256(t, bob, item)
		sent := cleanedInPage(t, bob, orig)
		if got != sum(sent) {
			t.Errorf("%s: %s: bob holds %s; the page's cleaning makes %s (the original is %s)", browser, s.file, got, sum(sent), sum(orig))
			continue
		}
		if l := metadataLeaks(t, sent); len(l) > 0 {
			t.Errorf("%s: %s reached bob with %s", browser, s.file, strings.Join(l, ", "))
		}
		if v, _ := bob.eval(item + `.querySelector("img")?.naturalWidth > 0`); v != true {
			t.Errorf("%s: bob does not show %s as a picture", browser, s.file)
		}
	}

	// A photo the page cannot clean is not sent until alice says so.
	heic := testdata(t, "leaky.heic")
	giveFile(t, alice, "IMG_0001.HEIC", "image/heic", heic)
	ask := `document.querySelector("#messages li.ask")`
	mustSee(t, alice, "alice", alice.waitFor("alice to be asked about the HEIC photo", ask+`?.textContent.includes("HEIC")`, waitShort))
	if v, _ := bob.eval(fileItemJS("IMG_0001.HEIC") + ` !== undefined`); v != false {
		t.Fatalf("%s: the HEIC photo reached bob before alice chose to send it", browser)
	}
	must(t, alice.eval2(ask+`.querySelector("button.anyway").click()`))
	heicItem := fileItemJS("IMG_0001.HEIC")
	mustSee(t, bob, "bob", bob.waitFor("bob to receive the HEIC photo as a file", heicItem+`?.querySelector("a.download") != null`, waitLong))
	if got := shownSHA256(t, bob, heicItem); got != sum(heic) {
		t.Errorf("%s: bob's HEIC file is %s, alice's %s", browser, got, sum(heic))
	}

	// A picture too large to draw is a download.
	giveFile(t, alice, "huge.png", "image/png", pngOfSize(60000, 60000))
	huge := fileItemJS("huge.png")
	mustSee(t, bob, "bob", bob.waitFor("bob to receive the huge picture", huge+`?.dataset.sha256 > ""`, waitLong))
	if v, _ := bob.eval(huge + `.querySelector("img") === null && ` + huge + `.querySelector("a.download") !== null && ` + huge + `.textContent.includes("60000")`); v != true {
		t.Errorf("%s: a 60000×60000 picture is not offered as a download with its size", browser)
	}

	for who, d := range map[string]driver{"alice": alice, "bob": bob} {
		noCSPViolations(t, d, who)
	}
	keepScreenshot(t, bob, strings.ToLower(browser)+"-pictures.png")
}

// TestChromiumPictures: picture cleaning, in Chromium.
func TestChromiumPictures(t *testing.T) {
	browser := Chromium(t)
	lan := startLANRoom(t, 2, "")
	a, b := cdpTab{Tab(t, browser)}, cdpTab{Tab(t, browser)}
	for i, tab := range []cdpTab{a, b} {
		must(t, tab.navigate(lan.url(i, "picture room")))
	}
	picturesScenario(t, a, b, "Chromium")
}

// TestFirefoxPictures: the same in Firefox ESR at Tor Browser's Safer
// level.
func TestFirefoxPictures(t *testing.T) {
	browser := Firefox(t)
	lan := startLANRoom(t, 2, "")
	a, b := firefoxTab(t, browser, lan.url(0, "picture room")), firefoxTab(t, browser, lan.url(1, "picture room"))
	picturesScenario(t, a, b, "Firefox")
}
