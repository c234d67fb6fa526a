package e2e

import (
	"context"
	"crypto/tls"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/chromedp"
	"github.com/onionchat/onionchat/internal/testing/need"
	"github.com/onionchat/onionchat/internal/tlscert"
)

// Chromium starts Debian's chromium headless with a fresh profile, kept
// off the network except for the addresses the test gives it, and returns
// its browser context. extra adds flags (a SOCKS proxy, say). The browser
// is stopped when the test ends.
func Chromium(t testing.TB, extra ...chromedp.ExecAllocatorOption) context.Context {
	t.Helper()
	path := need.Tool(t, "chromium", "chromium-browser")
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(path),
		chromedp.UserDataDir(filepath.Join(t.TempDir(), "profile")),
		chromedp.NoSandbox, // root in CI; the browser only sees our own pages
		chromedp.DisableGPU,
		chromedp.IgnoreCertErrors, // self-signed certificates, as friends accept them
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-domain-reliability", true),
		chromedp.Flag("no-pings", true),
		chromedp.Flag("disable-features", "Translate,OptimizationHints,MediaRouter,DialMediaRouteProvider,AutofillServerCommunication,CertificateTransparencyComponentUpdater,InterestFeedContentSuggestions"),
		chromedp.Env("HOME="+t.TempDir()),
		chromedp.WindowSize(1280, 900),
	)
	opts = append(opts, extra...)
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	bctx, cancelBrowser := chromedp.NewContext(actx)
	t.Cleanup(func() {
		cancelBrowser()
		cancelAlloc()
	})
	// The first run must use the browser's own context (a child would own
	// the browser and close it when done); a timer bounds it instead.
	slow := time.AfterFunc(60*time.Second, cancelBrowser)
	err := chromedp.Do(bctx)
	slow.Stop()
	if err != nil {
		t.Fatalf("start chromium: %v", err)
	}
	return bctx
}

// cspRecorder runs before any script of every page: it keeps each
// securitypolicyviolation event in window.__csp, so that violations raised
// before the page's own modules load are counted too.
const cspRecorder = `window.__csp = [];
document.addEventListener('securitypolicyviolation', (e) => {
  window.__csp.push(e.violatedDirective + ' ' + e.blockedURI + ' ' + e.sourceFile + ':' + e.lineNumber);
});`

// Tab opens a tab in a new, isolated browser context (its own cookies and
// storage, like another person's browser) with the CSP recorder installed.
func Tab(t testing.TB, browser context.Context) context.Context {
	t.Helper()
	ctx, cancel := chromedp.NewContext(browser, chromedp.WithNewBrowserContext())
	t.Cleanup(cancel)
	if _, err := chromedp.Call(ctx, page.AddScriptToEvaluateOnNewDocument, page.AddScriptToEvaluateOnNewDocumentParams{Source: cspRecorder}); err != nil {
		t.Fatalf("new tab: %v", err)
	}
	return ctx
}

// SameBrowserTab opens another tab in the browser context of tab: the
// same cookies, storage and connection pool, as a second tab of one
// person's browser.
func SameBrowserTab(t testing.TB, tab context.Context) context.Context {
	t.Helper()
	ctx, cancel := chromedp.NewContext(tab)
	t.Cleanup(cancel)
	if _, err := chromedp.Call(ctx, page.AddScriptToEvaluateOnNewDocument, page.AddScriptToEvaluateOnNewDocumentParams{Source: cspRecorder}); err != nil {
		t.Fatalf("new tab: %v", err)
	}
	return ctx
}

// selfSigned makes a throw-away certificate for 127.0.0.1, with a serial
// of its own (tlscert.New): Firefox refuses two certificates with the
// same issuer and serial, and each recorder makes one.
func selfSigned() (tls.Certificate, error) { return tlscert.New([]string{"127.0.0.1"}) }

// Artifacts returns the directory where tests leave screenshots for people
// to look at: $ONIONCHAT_ARTIFACTS, or internal/testing/e2e/artifacts.
func Artifacts(t testing.TB) string {
	t.Helper()
	dir := os.Getenv("ONIONCHAT_ARTIFACTS")
	if dir == "" {
		dir = "artifacts"
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	abs, _ := filepath.Abs(dir)
	return abs
}

// FreePort returns a loopback port that was free a moment ago, for a
// server that must come back on the same port after a restart.
func FreePort(t testing.TB) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}
