//go:build !linux

package tortest

import (
	"fmt"
	"os"
	"runtime"
	"testing"
)

// MainInNetns runs the tests of a package, for its TestMain. Network
// namespaces exist on Linux only: here it says so on stderr and runs the
// tests directly.
func MainInNetns(m *testing.M) {
	fmt.Fprintf(os.Stderr, "tortest: network namespace not available on %s; running the tests without isolation\n", runtime.GOOS)
	os.Exit(m.Run())
}
