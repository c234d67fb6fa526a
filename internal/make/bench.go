package main

import (
	"context"
	"os"
	"path/filepath"
)

// runBenchShort builds onionchat and onionchat-bench and runs
// "onionchat-bench -short": every scenario briefly, failing on any lost,
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

// runBench builds the appliance and the bench command, and runs the bench
// command's sub (none: the benchmark) with args against that appliance:
// the binary measured is the one a release ships, which carries no load
// generator.
func runBench(ctx context.Context, sub string, args ...string) error {
	dir, err := os.MkdirTemp("", "onionchat-bin-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	app, bench := filepath.Join(dir, "onionchat"), filepath.Join(dir, "onionchat-bench")
	if err := run(ctx, "go", "build", "-o", app, "./cmd/onionchat"); err != nil {
		return err
	}
	if err := run(ctx, "go", "build", "-o", bench, "./cmd/onionchat-bench"); err != nil {
		return err
	}
	argv := []string{"-onionchat", app}
	if sub != "" {
		argv = append([]string{sub}, argv...)
	}
	return run(ctx, bench, append(argv, args...)...)
}
