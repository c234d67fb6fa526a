// Command make holds the project's two README commands and their helpers:
//
//	go run ./internal/make run [onionchat flags]   install tor if missing, then run onionchat
//	go run ./internal/make test                    install test tools if missing, run every test
//
// It is developer tooling: it installs Debian packages (never starting their
// services) and runs go, node and the project's own checks. The appliance
// itself never installs anything.
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if len(os.Args) < 2 {
		usage()
		os.Exit(2)
	}
	var err error
	switch os.Args[1] {
	case "run":
		err = runApp(ctx, os.Args[2:])
	case "test":
		err = test(ctx, os.Args[2:])
	case "release":
		err = release(ctx, os.Args[2:])
	case "js":
		err = jsCommand(ctx, os.Args[2:])
	case "-h", "--help", "help":
		usage()
		return
	default:
		usage()
		os.Exit(2)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "make:", err)
		os.Exit(1)
	}
}

func usage() {
	fmt.Fprint(os.Stderr, `usage:
  go run ./internal/make run [onionchat flags]   install tor if missing (its own service left off), run onionchat
  go run ./internal/make test [-short] [-only STEP,...]
                                                 install tor, chromium and firefox-esr if missing, run every test
  go run ./internal/make release [-check]        build release binaries and .deb packages into dist/ (-check: twice, compare)
  go run ./internal/make js [-check]             bundle the page's pinned JavaScript (web/mls) into web/static/vendor
`)
}
