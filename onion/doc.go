// Package onion is everything Tor in onionchat: it finds and starts tor
// (through github.com/cretz/bine) with a hardened torrc that onionchat
// writes, declares the onion service in that torrc so that tor's syscall
// sandbox and every service option apply, waits for the descriptor to be
// published, and hands the caller a net.Listener on the unix socket tor
// forwards visitors to. Each accepted connection names its Tor circuit as
// its remote address (from the PROXY header tor sends), so per-peer limits
// work per circuit.
//
// It also owns the files Tor needs on disk: the service key (written by
// us, whole, in tor's format), client-authorization public keys, and
// tor's own state directory (guards, directory cache), kept across
// restarts. It fails closed: client authorization is either what the
// files say, checked against tor's log and its published descriptor, or
// the service does not run (see Start); nothing from the configuration
// becomes a torrc line (CheckTorrcValue); and an ephemeral key reaches tor
// through a pipe, never a file.
//
// It knows nothing of HTTP, WebSockets or chat rooms, and it never starts
// a tor without the caller's configuration: tests on a private network
// pass their network's lines through Config.ExtraTorrc.
package onion
