package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
)

// unitFile is the systemd unit shipped in the repository.
const unitFile = "systemd/onionchat.service"

// unitBinary is where the unit expects onionchat to be installed.
const unitBinary = "/usr/local/bin/onionchat"

// maxExposure is the highest `systemd-analyze security` exposure score
// (0 best, 10 worst) the unit may have.
const maxExposure = 2.0

// exposureRE finds the overall score in `systemd-analyze security` output:
// "→ Overall exposure level for onionchat.service: 1.1 OK 🙂".
var exposureRE = regexp.MustCompile(`Overall exposure level for \S+: ([0-9]+(?:\.[0-9]+)?)`)

// checkSystemd fails unless `systemd-analyze verify` has nothing to say
// about the unit and `systemd-analyze security --offline=true` rates it at
// maxExposure or better. It runs and prints both, whatever the first says. It
// needs systemd-analyze (not a running systemd) and runs in the module
// root.
func checkSystemd(ctx context.Context) error {
	if _, err := exec.LookPath("systemd-analyze"); err != nil {
		return fmt.Errorf("systemd: %w (install Debian's systemd package)", err)
	}
	verifyErr := verifyUnit(ctx)
	score, failing, err := unitExposure(ctx)
	if err != nil {
		return errors.Join(verifyErr, err)
	}
	fmt.Printf("systemd-analyze security: overall exposure %.1f (at most %.1f allowed); open items:\n%s", score, maxExposure, failing)
	if score > maxExposure {
		err = fmt.Errorf("systemd: %s exposure score %.1f is above %.1f", unitFile, score, maxExposure)
	}
	return errors.Join(verifyErr, err)
}

// verifyUnit runs `systemd-analyze verify` on a copy of the unit in which
// only ExecStart's binary is changed, from unitBinary to a freshly built
// onionchat: verify insists that the binary exists, and this machine need
// not have onionchat installed. Any output, or a non-zero exit, fails.
func verifyUnit(ctx context.Context) error {
	text, err := os.ReadFile(unitFile)
	if err != nil {
		return fmt.Errorf("systemd: %w", err)
	}
	tmp, err := os.MkdirTemp("", "onionchat-systemd-")
	if err != nil {
		return fmt.Errorf("systemd: %w", err)
	}
	defer os.RemoveAll(tmp)
	bin := filepath.Join(tmp, "onionchat")
	if err := run(ctx, "go", "build", "-o", bin, "./cmd/onionchat"); err != nil {
		return fmt.Errorf("systemd: %w", err)
	}
	copyText, err := withExecBinary(string(text), bin)
	if err != nil {
		return err
	}
	unitCopy := filepath.Join(tmp, filepath.Base(unitFile)) // the file name is the unit name
	if err := os.WriteFile(unitCopy, []byte(copyText), 0o644); err != nil {
		return fmt.Errorf("systemd: %w", err)
	}
	out, err := analyze(ctx, "verify", unitCopy)
	out = bytes.ReplaceAll(out, []byte(unitCopy), []byte(unitFile)) // same line numbers
	fmt.Printf("systemd-analyze verify %s (ExecStart binary: %s): ", unitFile, bin)
	if len(out) == 0 && err == nil {
		fmt.Println("no findings")
		return nil
	}
	fmt.Printf("\n%s", out)
	if err != nil {
		return fmt.Errorf("systemd: verify %s: %w", unitFile, err)
	}
	return fmt.Errorf("systemd: verify %s reported findings (above)", unitFile)
}

// withExecBinary returns unit with the binary of its single ExecStart=
// line, which must be unitBinary, replaced by bin. It fails if there is
// not exactly one such line, so the unit checked is the unit shipped.
func withExecBinary(unit, bin string) (string, error) {
	lines := strings.Split(unit, "\n")
	n := 0
	for i, l := range lines {
		rest, ok := strings.CutPrefix(strings.TrimSpace(l), "ExecStart=")
		if !ok {
			continue
		}
		n++
		args, ok := strings.CutPrefix(rest, unitBinary)
		if !ok || args != "" && !strings.HasPrefix(args, " ") {
			return "", fmt.Errorf("systemd: %s: ExecStart=%s does not run %s", unitFile, rest, unitBinary)
		}
		lines[i] = "ExecStart=" + strconv.Quote(bin) + args // quoted: TMPDIR may hold spaces
	}
	if n != 1 {
		return "", fmt.Errorf("systemd: %s has %d ExecStart= lines, want 1", unitFile, n)
	}
	return strings.Join(lines, "\n"), nil
}

// unitExposure runs `systemd-analyze security --offline=true` on the unit
// and returns its overall exposure score and the table lines of the checks
// it does not pass.
func unitExposure(ctx context.Context) (score float64, failing string, err error) {
	out, err := analyze(ctx, "security", "--offline=true", "--no-pager", unitFile)
	if err != nil {
		return 0, "", fmt.Errorf("systemd: security %s: %w\n%s", unitFile, err, out)
	}
	m := exposureRE.FindSubmatch(out)
	if m == nil {
		return 0, "", fmt.Errorf("systemd: no overall exposure level in systemd-analyze security output:\n%s", out)
	}
	score, err = strconv.ParseFloat(string(m[1]), 64)
	if err != nil {
		return 0, "", fmt.Errorf("systemd: exposure %q: %w", m[1], err)
	}
	var b strings.Builder
	for l := range strings.Lines(string(out)) {
		if strings.HasPrefix(l, "✗") {
			b.WriteString("  " + l)
		}
	}
	return score, b.String(), nil
}

// analyze runs systemd-analyze with args, without colours or a pager, and
// returns its combined output.
func analyze(ctx context.Context, args ...string) ([]byte, error) {
	cmd := exec.CommandContext(ctx, "systemd-analyze", args...)
	cmd.Env = append(os.Environ(), "SYSTEMD_COLORS=0", "SYSTEMD_PAGER=", "SYSTEMD_LOG_COLOR=0")
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	return out.Bytes(), err
}
