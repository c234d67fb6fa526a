package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
)

// runApp installs tor if it is missing (with Debian's own tor service left
// disabled), builds onionchat and runs it with args, in onion mode unless
// args say otherwise. Interrupts reach onionchat, which shuts down cleanly.
func runApp(ctx context.Context, args []string) error {
	if err := chdirRoot(); err != nil {
		return err
	}
	if !hasMode(args, "lan") {
		if err := ensure(ctx, "tor"); err != nil {
			return err
		}
	}
	bin := filepath.Join(os.TempDir(), "onionchat-run", "onionchat")
	if err := run(ctx, "go", "build", "-trimpath", "-o", bin, "./cmd/onionchat"); err != nil {
		return err
	}
	cmd := exec.Command(bin, args...) // not CommandContext: the signal reaches it directly
	cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, os.Stdout, os.Stderr
	if err := cmd.Run(); err != nil {
		if ee, ok := err.(*exec.ExitError); ok {
			os.Exit(ee.ExitCode())
		}
		return fmt.Errorf("onionchat: %w", err)
	}
	return nil
}

func hasMode(args []string, mode string) bool {
	for i, a := range args {
		if a == "--mode="+mode || a == "-mode="+mode || (a == "--mode" || a == "-mode") && i+1 < len(args) && args[i+1] == mode {
			return true
		}
	}
	return false
}
