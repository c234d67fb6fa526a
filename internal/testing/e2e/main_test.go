package e2e

import (
	"testing"

	"github.com/onionchat/onionchat/internal/testing/tortest"
)

// TestMain runs every end-to-end test in a network namespace of its own
// with only loopback (where the machine allows it): the real binary, tor,
// Chromium and Firefox can reach 127.0.0.1 and nothing else.
func TestMain(m *testing.M) { tortest.MainInNetns(m) }
