// Package cli is what onionchat's commands (cmd/onionchat and
// cmd/onionchat-bench) share around their own run function: the signals
// that stop them, their exit status, and their flag sets' usage. It
// knows nothing of what a command does.
package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
)

// Main runs run with the command's arguments and a context that ends at
// SIGINT or SIGTERM, then exits: 0 when run returns nil or the usage was
// asked for (-help), else 1 after printing "name: err" on stderr.
func Main(name string, run func(ctx context.Context, args []string, stdout, stderr io.Writer) error) {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	if errors.Is(err, flag.ErrHelp) {
		os.Exit(0)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, name+":", err)
		os.Exit(1)
	}
}

// FlagSet returns a flag set that reports its errors on stderr and whose
// usage (-help, or a flag it does not know) is usage and then its flags.
func FlagSet(name, usage string, stderr io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprint(stderr, usage)
		fs.PrintDefaults()
	}
	return fs
}
