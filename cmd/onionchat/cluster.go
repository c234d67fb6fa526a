package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"path/filepath"

	"github.com/onionchat/onionchat/onion"
)

// listFlag is a flag that may be given more than once.
type listFlag []string

func (l *listFlag) String() string     { return fmt.Sprint(*l) }
func (l *listFlag) Set(v string) error { *l = append(*l, v); return nil }

// clusterCmd prints the Onionbalance front's configuration for the key
// the owner already has (an onionchat data directory's, moved to the
// front) and the backends' addresses; each backend writes its own
// ob_config when it starts with cluster.front set.
func clusterCmd(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("cluster", flag.ContinueOnError)
	fs.SetOutput(stderr)
	key := fs.String("front-key", "", "the front's key `file` (tor's hs_ed25519_secret_key format, e.g. moved from an onionchat data directory's onion/)")
	var backends listFlag
	fs.Var(&backends, "backend", "a backend's own onion `address` (repeat for each; onionchat prints it at start)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *key == "" || len(backends) == 0 || fs.NArg() > 0 {
		return errors.New("cluster needs --front-key FILE and a --backend ADDRESS for each backend; it prints the front's Onionbalance config")
	}
	abs, err := filepath.Abs(*key)
	if err != nil {
		return err
	}
	cfg, front, err := onion.FrontConfig(abs, backends)
	if err != nil {
		return err
	}
	stdout.Write(cfg)
	fmt.Fprintf(stderr, "Front address: %s\nOn each backend set, in [cluster]: front = %q\n", front, front)
	return nil
}
