// Command onionchat is a self-hosted group chat appliance: it publishes an
// end-to-end encrypted chat page and its relay as a Tor onion service, or
// over HTTPS on a LAN. See README.md.
package main

import (
	"context"
	"fmt"
	"io"

	"github.com/onionchat/onionchat/internal/cli"
)

// version is set at release build time (-ldflags "-X main.version=…").
var version = "dev"

func main() { cli.Main("onionchat", run) }

const usage = `Usage:
  onionchat [flags]                  serve (onion mode unless --mode or the config says otherwise)
  onionchat address [flags]          print the stored onion address and its QR code; starts nothing
  onionchat auth add NAME [flags]    authorize a friend's Tor Browser; prints the key to give them
  onionchat auth list [flags]        list authorized clients
  onionchat auth remove NAME [--open] revoke a client (--open for the last one: anyone with the address then gets in)
  onionchat check-config [flags]     check a config file and exit
  onionchat cluster --front-key F --backend ADDR...  print the Onionbalance front's config (see docs/cluster.md)
  onionchat version                  print the version

Flags:
`

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) > 0 && len(args[0]) > 0 && args[0][0] != '-' {
		switch args[0] {
		case "version":
			fmt.Fprintln(stdout, "onionchat", versionString())
			return nil
		case "check-config":
			return checkConfig(args[1:], stdout, stderr)
		case "address":
			return address(args[1:], stdout, stderr)
		case "auth":
			return auth(args[1:], stdout, stderr)
		case "cluster":
			return clusterCmd(args[1:], stdout, stderr)
		}
		return fmt.Errorf("unknown command %q; see onionchat --help", args[0])
	}
	return serve(ctx, args, stdout, stderr)
}
