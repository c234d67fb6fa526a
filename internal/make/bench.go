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
func runBenchShort(ctx context.Context) error {
	dir, err := os.MkdirTemp("", "onionchat-bench-bin-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	bin := filepath.Join(dir, "onionchat")
	if err := run(ctx, "go", "build", "-o", bin, "./cmd/onionchat"); err != nil {
		return err
	}
	return run(ctx, bin, "bench", "-short")
}
