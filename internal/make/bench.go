package main

import (
	"context"
	"os"
	"path/filepath"
)

// runBenchShort runs "onionchat-bench -short" against the onionchat it
// builds: every scenario briefly, failing on any lost,
// duplicated or corrupt delivery. Speed is not asserted here (the machine
// is shared); docs/performance.md has the full figures.
func runBenchShort(ctx context.Context) error { return runBench(ctx, "", "-short") }

// runSoakShort runs "onionchat-bench soak -short" (under 3 minutes): 2,000
// clients with churn and every abuse scenario beside well-behaved members,
// failing on what load cannot change: a delivery lost, duplicated or
// corrupt, a limit not enforced, goroutines or memory not back to
// baseline once all leave. Latency is printed; only a gross regression
// fails (bench.verdict says why).
func runSoakShort(ctx context.Context) error { return runBench(ctx, "soak", "-short") }

// runBench builds the bench command and runs its sub (none: the
// benchmark) with args. Given no -onionchat, it builds the appliance
// itself (bench.Build: go build ./cmd/onionchat, as a release's binary
// carries no load generator) and measures that.
func runBench(ctx context.Context, sub string, args ...string) error {
	dir, err := os.MkdirTemp("", "onionchat-bin-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	bench := filepath.Join(dir, "onionchat-bench")
	if err := run(ctx, "go", "build", "-o", bench, "./cmd/onionchat-bench"); err != nil {
		return err
	}
	if sub != "" {
		args = append([]string{sub}, args...)
	}
	return run(ctx, bench, args...)
}
