// Command onionchat-bench measures a real onionchat: its fan-out, latency
// and memory (the default), or thousands of clients with churn and abuse
// beside well-behaved members (soak). It starts the appliance's own
// binary as a separate process, never itself: the binary that runs on a
// Raspberry Pi carries no load generator or flood client. See README.md.
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"

	"github.com/onionchat/onionchat/internal/cli"
	"github.com/onionchat/onionchat/internal/testing/bench"
)

func main() { cli.Main("onionchat-bench", run) }

const usage = `Usage:
  onionchat-bench [-short] [-json F] [flags]  measure fan-out, latency and memory of a real onionchat here
  onionchat-bench soak [-short] [flags]       run thousands of clients, churn and abuse against a real onionchat

Both start the onionchat binary given by -onionchat, or one they build
from this module (go build ./cmd/onionchat).

Flags:
`

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) > 0 && args[0] == "soak" {
		return soakCmd(ctx, args[1:], stdout, stderr)
	}
	return benchCmd(ctx, args, stdout, stderr)
}

// flags returns a flag set with the flag both commands share
// (-onionchat) and a func that returns that binary, or builds one into a
// temporary directory that done removes.
func flags(name string, stderr io.Writer) (*flag.FlagSet, func(context.Context) (bin string, done func(), err error)) {
	fs := cli.FlagSet(name, usage, stderr)
	binary := fs.String("onionchat", "", "the onionchat `binary` to start; none: build one from this module")
	return fs, func(ctx context.Context) (string, func(), error) {
		if *binary != "" {
			return *binary, func() {}, nil
		}
		dir, err := os.MkdirTemp("", "onionchat-bench-bin-")
		if err != nil {
			return "", nil, err
		}
		bin, err := bench.Build(ctx, dir)
		if err != nil {
			os.RemoveAll(dir)
			return "", nil, err
		}
		return bin, func() { os.RemoveAll(dir) }, nil
	}
}

// parse parses args into fs and refuses a word left after the flags,
// before anything is built, started or measured.
func parse(fs *flag.FlagSet, args []string) error {
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unknown command %q; see onionchat-bench --help", fs.Arg(0))
	}
	return nil
}

func benchCmd(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs, onionchat := flags("onionchat-bench", stderr)
	short := fs.Bool("short", false, "a quick run of every scenario (checks delivery, not speed)")
	jsonPath := fs.String("json", "", "also write the report as JSON to `file`")
	target := fs.String("target", "", "measure a running onionchat at `URL` instead of starting one (no server CPU or RSS then)")
	if err := parse(fs, args); err != nil {
		return err
	}
	o := bench.Options{Short: *short, JSON: *jsonPath, Target: *target, Out: stdout}
	if o.Target == "" {
		bin, done, err := onionchat(ctx)
		if err != nil {
			return err
		}
		defer done()
		o.Binary = bin
	}
	_, err := bench.Run(ctx, o)
	return err
}

func soakCmd(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs, onionchat := flags("onionchat-bench soak", stderr)
	short := fs.Bool("short", false, "the test command's version: 2,000 clients, under 3 minutes")
	clients := fs.Int("clients", 0, "clients in all, half well-behaved (default 10000, 2000 with -short)")
	duration := fs.Duration("duration", 0, "length of the abuse phase (default 10m, 35s with -short)")
	jsonPath := fs.String("json", "", "also write the report as JSON to `file`")
	abuse := fs.String("abuse", "", "(used by soak itself) run only the abusive clients against `URL` for -duration")
	rooms := fs.String("rooms", "", "(used by soak itself, with -abuse) prefix of the well-behaved members' rooms")
	if err := parse(fs, args); err != nil {
		return err
	}
	if *abuse != "" {
		return bench.Abuse(ctx, *abuse, *rooms, *clients, *duration, stdout)
	}
	bin, done, err := onionchat(ctx)
	if err != nil {
		return err
	}
	defer done()
	_, err = bench.Soak(ctx, bench.SoakOptions{Short: *short, Clients: *clients, Duration: *duration, JSON: *jsonPath, Binary: bin, Out: stdout})
	return err
}
