package main

import (
	"context"
	"os"
	"path/filepath"
)

// runBenchShort builds onionchat and runs "onionchat bench -short": every
// scenario briefly, failing on any lost, duplicated or corrupt delivery.
// Speed is not asserted here (the machine is shared); the README has the
// full figures.
func runBenchShort(ctx context.Context) error { return runBuilt(ctx, "bench", "-short") }

// runSoakShort runs "onionchat soak -short" (under 3 minutes): 2,000
// clients with churn and every abuse scenario beside well-behaved members,
// failing on what load cannot change: a delivery lost, duplicated or
// corrupt, a limit not enforced, goroutines or memory not back to
// baseline once all leave. Latency is printed; only a gross regression
// fails (bench.verdict says why).
func runSoakShort(ctx context.Context) error { return runBuilt(ctx, "soak", "-short") }

// runBuilt builds onionchat and runs it with args.
func runBuilt(ctx context.Context, args ...string) error {
	dir, err := os.MkdirTemp("", "onionchat-bin-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	bin := filepath.Join(dir, "onionchat")
	if err := run(ctx, "go", "build", "-o", bin, "./cmd/onionchat"); err != nil {
		return err
	}
	return run(ctx, bin, args...)
}
