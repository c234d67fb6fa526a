package main

import (
	"os/exec"
	"strings"
	"testing"
)

// TestCarriesOnlyTheAppliance: the binary that runs on a friend's
// Raspberry Pi links no load generator or flood client (the benchmark and
// the soak are cmd/onionchat-bench's), and no test harness: nothing under
// internal/testing.
func TestCarriesOnlyTheAppliance(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps", ".").Output()
	if err != nil {
		t.Fatalf("go list -deps: %v", err)
	}
	deps := strings.Fields(string(out))
	const mod = "github.com/onionchat/onionchat/"
	own := 0
	for _, p := range deps {
		if strings.HasPrefix(p, mod) {
			own++
		}
		if strings.HasPrefix(p, mod+"internal/testing/") || strings.HasPrefix(p, mod+"cmd/onionchat-bench") {
			t.Errorf("the appliance links %s", p)
		}
	}
	if own < 5 {
		t.Fatalf("go list named %d of our packages among %d: the check proves nothing\n%s", own, len(deps), out)
	}
}
