package onion

import (
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"syscall"
	"time"

	"github.com/onionchat/onionchat/internal/securefile"
)

// An ephemeral service's secret key never lands in a file. tor reads a
// service key only from HiddenServiceDir/hs_ed25519_secret_key, and
// ADD_ONION, which would keep it in memory, is no way out: tor 0.4.9.11's
// ADD_ONION takes Port, Flags, MaxStreams, the PoW settings and
// ClientAuthV3, but no ExportCircuitID (refused as a keyword and as a
// flag), so no PROXY header and no per-circuit limits, and no intro-point
// DoS settings. So onionchat declares the service in the
// torrc as always and makes that name a FIFO (a named pipe): tor's file
// reader accepts one (it reads a FIFO to its end), the key goes through
// the pipe's kernel buffer and is never stored, and once tor has loaded it
// (tor writes the hostname file right after) the FIFO is removed. Nothing
// is traded away: the sandbox, the PROXY header and every defence apply.

// fifoPoll is how often the key feeder looks for tor opening the FIFO.
const fifoPoll = 5 * time.Millisecond

// prepareEphemeral makes a fresh service directory in the runtime
// directory with a new key: the public half as a file (tor needs it to
// tell a missing secret key from a new service, and it holds nothing
// secret), the secret half as a FIFO that feedKey serves.
func (s *Service) prepareEphemeral() error {
	s.hsDir = filepath.Join(s.runtime, "ephemeral-onion")
	os.RemoveAll(s.hsDir)
	if err := os.Mkdir(s.hsDir, 0o700); err != nil {
		return fmt.Errorf("onion: %w", err)
	}
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return fmt.Errorf("onion: generate key: %w", err)
	}
	if err := securefile.WriteNew(filepath.Join(s.hsDir, PublicKeyFile), append(slices.Clone(publicHeader), pub...)); err != nil {
		return fmt.Errorf("onion: %w", err)
	}
	if err := syscall.Mkfifo(filepath.Join(s.hsDir, SecretKeyFile), 0o600); err != nil {
		return fmt.Errorf("onion: make the pipe for the key: %w", err)
	}
	s.ephemeralKey = secretKey(priv)
	clear(priv)
	s.Addr = Address(pub)
	return nil
}

// feedKey writes the ephemeral secret key into the FIFO each time tor
// opens it (tor 0.4.9.11 reads it three times while it starts), until tor
// has written the service's hostname file, which it does right after its
// last read. Then it removes the FIFO and forgets the key. It gives up,
// and reports why on s.keyFed, when tor exits or the service closes.
//
// tor reads to end of file, which it sees once no writer has the FIFO
// open. So after each write feedKey waits until tor has closed its end
// (inotify's IN_CLOSE_NOWRITE on the FIFO) before it opens the FIFO
// again: otherwise it could join the same read and tor would get the key
// twice over, which it rejects.
func (s *Service) feedKey() {
	fifo := filepath.Join(s.hsDir, SecretKeyFile)
	hostname := filepath.Join(s.hsDir, "hostname")
	defer func() {
		os.Remove(fifo)
		clear(s.ephemeralKey)
	}()
	closes, err := syscall.InotifyInit1(syscall.IN_CLOEXEC | syscall.IN_NONBLOCK)
	if err == nil {
		defer syscall.Close(closes)
		_, err = syscall.InotifyAddWatch(closes, fifo, syscall.IN_CLOSE_NOWRITE)
	}
	if err != nil {
		s.keyFed <- fmt.Errorf("onion: watch the pipe for the key: %w", err)
		return
	}
	events := make([]byte, 4096)
	served, readerOpen := 0, false
	for {
		if readerOpen { // tor is still reading the last copy
			if n, _ := syscall.Read(closes, events); n > 0 {
				readerOpen = false
				continue
			}
		} else {
			fd, err := syscall.Open(fifo, syscall.O_WRONLY|syscall.O_NONBLOCK|syscall.O_CLOEXEC, 0)
			switch {
			case err == nil:
				// 96 bytes fit a pipe's buffer: one write, then end of file.
				_, err = syscall.Write(fd, s.ephemeralKey)
				syscall.Close(fd)
				if err != nil {
					s.keyFed <- fmt.Errorf("onion: hand the key to tor: %w", err)
					return
				}
				served++
				readerOpen = true
				continue
			case !errors.Is(err, syscall.ENXIO): // ENXIO: no reader
				s.keyFed <- fmt.Errorf("onion: hand the key to tor: %w", err)
				return
			}
			if _, err := os.Stat(hostname); err == nil && served > 0 {
				s.keyFed <- nil
				return
			}
		}
		select {
		case <-s.done:
			s.keyFed <- errors.New("onion: tor stopped before it read the service key")
			return
		case <-s.closing:
			s.keyFed <- errors.New("onion: stopped before tor read the service key")
			return
		case <-time.After(fifoPoll):
		}
	}
}
