package e2e

import (
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"image"
	"image/color"
	"image/jpeg"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/onionchat/onionchat/internal/testing/need"
)

// photoWithGPS makes a JPEG of about n bytes (noise, so it does not
// compress) carrying the metadata segments of web/jstest/testdata/photo.jpg:
// Exif with GPS, camera and serial number, XMP with an author, IPTC with a
// city, and a comment.
func photoWithGPS(t *testing.T, n int) []byte {
	t.Helper()
	sample, err := os.ReadFile(filepath.Join("..", "..", "..", "web", "jstest", "testdata", "photo.jpg"))
	must(t, err)
	var meta []byte
	for i := 2; i+4 <= len(sample) && sample[i] == 0xff; {
		m, l := sample[i+1], int(sample[i+2])<<8|int(sample[i+3])
		if m == 0xe1 || m == 0xed || m == 0xfe {
			meta = append(meta, sample[i:i+2+l]...)
		}
		if m == 0xda {
			break
		}
		i += 2 + l
	}
	side := 1200
	for {
		img := image.NewRGBA(image.Rect(0, 0, side, side))
		r := rand.New(rand.NewPCG(1, 2))
		for i := range img.Pix {
			img.Pix[i] = uint8(r.UintN(256))
		}
		img.Set(0, 0, color.RGBA{255, 0, 0, 255})
		var b bytes.Buffer
		must(t, jpeg.Encode(&b, img, &jpeg.Options{Quality: 100}))
		if b.Len() >= n || side > 4000 {
			j := b.Bytes()
			return append(append(append([]byte(nil), j[:2]...), meta...), j[2:]...)
		}
		side = side * 12 / 10
	}
}

// exifLeaks reports what of the sample's metadata a JPEG still carries.
func exifLeaks(b []byte) []string {
	var found []string
	for _, s := range []string{"TestCam", "SN123456", "Alice Example", "Paris", "secret comment", "GPS"} {
		if bytes.Contains(b, []byte(s)) {
			found = append(found, s)
		}
	}
	// A GPS IFD pointer (tag 0x8825) in any Exif block, either byte order.
	for i := 0; i+4 <= len(b); i++ {
		if b[i] == 0xff && b[i+1] == 0xe1 && i+10 < len(b) && string(b[i+4:i+10]) == "Exif\x00\x00" {
			l := int(b[i+2])<<8 | int(b[i+3])
			seg := b[i+4 : min(len(b), i+2+l)]
			if bytes.Contains(seg, []byte{0x88, 0x25}) || bytes.Contains(seg, []byte{0x25, 0x88}) {
				found = append(found, "GPS IFD")
			}
		}
	}
	return found
}

// giveFile hands bytes to the page's file input as a person picking a
// file would (a DataTransfer, since a test cannot click a file dialog).
func giveFile(t *testing.T, d driver, name, typ string, b []byte) {
	t.Helper()
	js := fmt.Sprintf(`(() => {
		const bin = atob(%s);
		const u = new Uint8Array(bin.length);
		for (let i = 0; i < bin.length; i++) u[i] = bin.charCodeAt(i);
		const dt = new DataTransfer();
		dt.items.add(new File([u], %s, { type: %s }));
		const input = document.getElementById("file");
		input.files = dt.files;
		input.dispatchEvent(new Event("change", { bubbles: true }));
		return true;
	})()`, js(base64.StdEncoding.EncodeToString(b)), js(name), js(typ))
	if _, err := d.eval(js); err != nil {
		t.Fatalf("give %s to the page: %v", name, err)
	}
}

// fileItemJS finds the message of a file by its shown name.
func fileItemJS(name string) string {
	return fmt.Sprintf(`[...document.querySelectorAll("#messages li.file")].find(li => li.querySelector(".fname").textContent.startsWith(%s + " ("))`, js(name))
}

// shownSHA256 is the SHA-256 a page shows for a file it finished sending
// or receiving: the hash it checked the bytes against.
func shownSHA256(t *testing.T, d driver, itemJS string) string {
	t.Helper()
	v, err := d.eval(itemJS + `?.dataset.sha256 || ""`)
	must(t, err)
	return fmt.Sprint(v)
}

// stripWithPage runs the page's own strip.mjs under node on b, as the
// sender's page does, and returns what it makes.
func stripWithPage(t *testing.T, b []byte) []byte {
	t.Helper()
	node := need.Tool(t, "node", "nodejs")
	dir := t.TempDir()
	in, out := filepath.Join(dir, "in"), filepath.Join(dir, "out")
	must(t, os.WriteFile(in, b, 0o600))
	strip, err := filepath.Abs(filepath.Join("..", "..", "..", "web", "static", "strip.mjs"))
	must(t, err)
	script := fmt.Sprintf(`import(%s).then((m) => { const fs = require("fs"); fs.writeFileSync(%s, m.stripMetadata(new Uint8Array(fs.readFileSync(%s))).bytes); })`, js("file://"+strip), js(out), js(in))
	cmd := exec.Command(node, "-e", script)
	if o, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("node strip.mjs: %v\n%s", err, o)
	}
	r, err := os.ReadFile(out)
	must(t, err)
	return r
}

func sum(b []byte) string { h := sha256.Sum256(b); return hex.EncodeToString(h[:]) }

// filesScenario: in the page, alice sends a 5 MiB photo with GPS data to
// bob and carol, then a PDF, then starts a large file and cancels it. It
// runs the same in Chromium and Firefox.
func filesScenario(t *testing.T, lan *lanRoom, alice, bob, carol driver, browser string) {
	const pass = "finch-lantern-copper-22"
	join(t, alice, "", "alice", pass)
	join(t, bob, "", "bob", pass)
	join(t, carol, "", "carol", pass)
	photo := photoWithGPS(t, 5<<20)
	if len(exifLeaks(photo)) < 4 {
		t.Fatalf("the test photo lacks its metadata: %v", exifLeaks(photo))
	}

	start := time.Now()
	giveFile(t, alice, "holiday.jpg", "image/jpeg", photo)
	must(t, alice.waitFor("alice to be told the metadata went", fileItemJS("holiday.jpg")+`?.querySelector(".note").textContent.includes("EXIF")`, waitShort))
	picture := fileItemJS("holiday.jpg") + `?.querySelector("img")?.naturalWidth > 0`
	for who, d := range map[string]driver{"bob": bob, "carol": carol} {
		mustSee(t, d, who, d.waitFor(who+" to show the picture", picture, 3*waitLong))
	}
	took := time.Since(start)
	stripped := stripWithPage(t, photo)
	if leaks := exifLeaks(stripped); len(leaks) > 0 {
		t.Errorf("the page's stripping leaves %v in the picture", leaks)
	}
	// Each receiver told alice, inside the group, that it has it whole.
	mustSee(t, alice, "alice", alice.waitFor("alice to show the picture delivered", fileItemJS("holiday.jpg")+`?.dataset.delivery === "delivered"`, waitLong))
	if got := shownSHA256(t, alice, fileItemJS("holiday.jpg")); got != sum(stripped) {
		t.Errorf("alice sent %s, not the stripped picture %s", got, sum(stripped))
	}
	for who, d := range map[string]driver{"bob": bob, "carol": carol} {
		if got := shownSHA256(t, d, fileItemJS("holiday.jpg")); got != sum(stripped) {
			t.Errorf("%s received %q; the stripped picture is %s (the original %s)", who, got, sum(stripped), sum(photo))
		}
	}
	mine := stripped
	allowed := time.Duration(float64(len(mine)) * 4 / 3 * 32768 / 31744 / float64(192<<10) * float64(time.Second))
	t.Logf("%s: a %.1f MiB picture (%.1f MiB after stripping) reached bob and carol in %v; the default byte rate (192 KiB/s) allows %v: %.2fx",
		browser, float64(len(photo))/(1<<20), float64(len(mine))/(1<<20), took.Round(100*time.Millisecond), allowed.Round(100*time.Millisecond), took.Seconds()/allowed.Seconds())

	// A PDF is a download with the same bytes.
	pdf := append([]byte("%PDF-1.7\n"), bytes.Repeat([]byte("report line\n"), 20000)...)
	giveFile(t, alice, "report.pdf", "application/pdf", pdf)
	download := fileItemJS("report.pdf") + `?.querySelector("a.download") != null`
	must(t, bob.waitFor("bob to get the PDF as a download", download, waitLong))
	if got := shownSHA256(t, bob, fileItemJS("report.pdf")); got != sum(pdf) {
		t.Errorf("bob's PDF is %s; alice sent %s", got, sum(pdf))
	}
	if v, _ := bob.eval(fileItemJS("report.pdf") + `.querySelector("a.download").download`); v != "report.pdf" {
		t.Errorf("the download's name is %v", v)
	}

	// carol declines the next one; alice is told, and it did not reach everyone.
	giveFile(t, alice, "slides.bin", "application/octet-stream", bytes.Repeat([]byte{5}, 4<<20))
	must(t, carol.waitFor("carol to start receiving", fileItemJS("slides.bin")+`?.querySelector("progress")?.value > 0.02`, waitLong))
	must(t, carol.eval2(fileItemJS("slides.bin")+`.querySelector("button.cancel").click()`))
	waitNotice(t, alice, "alice", "carol declined “slides.bin”")
	must(t, alice.waitFor("alice to show who did not get it", fileItemJS("slides.bin")+`?.querySelector(".delivery")?.textContent === "did not reach everyone (carol cancelled it)"`, 2*waitLong))

	// A large file, cancelled by alice partway: nobody is left with it.
	giveFile(t, alice, "big.bin", "application/octet-stream", bytes.Repeat([]byte{7}, 8<<20))
	must(t, bob.waitFor("bob to start receiving", fileItemJS("big.bin")+`?.querySelector("progress")?.value > 0.05`, waitLong))
	must(t, alice.eval2(fileItemJS("big.bin")+`.querySelector("button.cancel").click()`))
	for who, d := range map[string]driver{"bob": bob, "carol": carol} {
		must(t, d.waitFor(who+" to be told it was cancelled", fileItemJS("big.bin")+`?.querySelector(".why").textContent.includes("alice cancelled it")`, waitShort))
		if v, _ := d.eval(fileItemJS("big.bin") + `.querySelectorAll("a, img, progress").length`); v != float64(0) {
			t.Errorf("%s still shows %v links, pictures or progress for the cancelled file", who, v)
		}
	}
	must(t, alice.waitFor("alice to show it cancelled", fileItemJS("big.bin")+`?.querySelector(".why").textContent === "Cancelled."`, waitShort))

	for who, d := range map[string]driver{"alice": alice, "bob": bob, "carol": carol} {
		noCSPViolations(t, d, who)
	}
	for _, rec := range lan.recs {
		neverSent(t, rec, pass, "holiday.jpg", "report.pdf", "report line\nreport line", "TestCam", "Alice Example", string(photo[len(photo)/2:len(photo)/2+64]))
	}
}

// TestChromiumFiles: pictures and files between three people in Chromium.
func TestChromiumFiles(t *testing.T) {
	browser := Chromium(t)
	lan := startLANRoom(t, 3, "")
	a, b, c := cdpTab{Tab(t, browser)}, cdpTab{Tab(t, browser)}, cdpTab{Tab(t, browser)}
	for i, tab := range []cdpTab{a, b, c} {
		must(t, tab.navigate(lan.url(i, "file room")))
	}
	filesScenario(t, lan, a, b, c, "Chromium")
	keepScreenshot(t, b, "chromium-files.png")
}

// TestFirefoxFiles: the same in Firefox ESR with WebAssembly and the JITs
// off (Tor Browser's Safer level).
func TestFirefoxFiles(t *testing.T) {
	browser := Firefox(t)
	lan := startLANRoom(t, 3, "")
	a, b, c := firefoxTab(t, browser, lan.url(0, "file room")), firefoxTab(t, browser, lan.url(1, "file room")), firefoxTab(t, browser, lan.url(2, "file room"))
	filesScenario(t, lan, a, b, c, "Firefox")
}
