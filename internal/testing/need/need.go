// Package need lets tests ask for an external tool (tor, chromium,
// firefox-esr, node, exiftool). When the tool is missing the test is skipped, unless
// ONIONCHAT_REQUIRE_TOOLS=1 (set by the project's test command and CI), in
// which case it fails: in CI a missing tool is an error, not a pass.
package need

import (
	"os"
	"os/exec"
	"testing"
)

// EnvRequire is the variable that turns a missing tool into a failure.
const EnvRequire = "ONIONCHAT_REQUIRE_TOOLS"

// Required reports whether missing tools fail tests.
func Required() bool { return os.Getenv(EnvRequire) == "1" }

// Tool returns the path of the first of names found on $PATH, or stops the
// test: a skip normally, a failure when tools are required.
func Tool(t testing.TB, names ...string) string {
	t.Helper()
	for _, n := range names {
		if p, err := exec.LookPath(n); err == nil {
			return p
		}
	}
	Missing(t, "%v not found on $PATH (go run ./internal/make test installs it)", names)
	return ""
}

// Missing stops the test for a missing prerequisite, formatted like
// t.Fatalf: a skip normally, a failure when tools are required.
func Missing(t testing.TB, format string, args ...any) {
	t.Helper()
	if Required() {
		t.Fatalf("missing: "+format, args...)
	}
	t.Skipf("missing: "+format, args...)
}
