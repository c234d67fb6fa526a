package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
)

// debPackage names the Debian package that provides each command we need.
var debPackage = map[string]string{
	"tor":             "tor",
	"tor-gencert":     "tor",
	"chromium":        "chromium",
	"firefox-esr":     "firefox-esr",
	"systemd-analyze": "systemd",
	"node":            "nodejs",
	"npm":             "npm",                    // installs the page's pinned JavaScript for `make js` (never at run time)
	"exiftool":        "libimage-exiftool-perl", // the independent reader of what picture cleaning leaves (issue 23)
	"onionbalance":    "onionbalance",           // the front of a cluster (issue 16); its tor is ours, its service never started
	"lintian":         "lintian",                // checks the .deb packages
	"debootstrap":     "debootstrap",            // a clean Debian root to install them in
}

// ensure installs, from Debian's archive, the packages of the commands
// that are missing. Package services are never started: a policy-rc.d that
// forbids it is in place during the install (created and removed by us if
// the machine has none), and tor's own service is disabled afterwards so
// that only onionchat's tor ever runs.
func ensure(ctx context.Context, commands ...string) error {
	var pkgs []string
	seen := map[string]bool{}
	for _, c := range commands {
		if _, err := exec.LookPath(c); err == nil {
			continue
		}
		p := debPackage[c]
		if p == "" {
			return fmt.Errorf("%s is missing and no Debian package is known for it", c)
		}
		if !seen[p] {
			seen[p] = true
			pkgs = append(pkgs, p)
		}
	}
	if len(pkgs) == 0 {
		return nil
	}
	if _, err := exec.LookPath("apt-get"); err != nil {
		return fmt.Errorf("missing %s and this is not a Debian-like system: install them, then run again", strings.Join(pkgs, ", "))
	}
	sudo, err := rootPrefix()
	if err != nil {
		return fmt.Errorf("installing %s needs root: %w", strings.Join(pkgs, ", "), err)
	}
	fmt.Printf("Installing %s from Debian (services not started)...\n", strings.Join(pkgs, " "))
	const policy = "/usr/sbin/policy-rc.d"
	if _, err := os.Stat(policy); errors.Is(err, os.ErrNotExist) {
		if err := sh(ctx, sudo, "sh", "-c", "printf '#!/bin/sh\\nexit 101\\n' > "+policy+" && chmod 755 "+policy); err != nil {
			return err
		}
		defer sh(context.Background(), sudo, "rm", "-f", policy)
	}
	if err := sh(ctx, sudo, "apt-get", "update", "-q"); err != nil {
		return err
	}
	args := append([]string{"env", "DEBIAN_FRONTEND=noninteractive", "apt-get", "install", "-y", "-q", "--no-install-recommends"}, pkgs...)
	if err := sh(ctx, sudo, args...); err != nil {
		return err
	}
	if seen["tor"] {
		disableDistroTor(ctx, sudo)
	}
	if seen["onionbalance"] {
		// Its service would start at boot with Debian's config; tests
		// start their own onionbalance by PID.
		if _, err := exec.LookPath("systemctl"); err == nil {
			sh(ctx, sudo, "systemctl", "disable", "onionbalance.service")
		}
	}
	return nil
}

// disableDistroTor turns off Debian's tor service, which would otherwise
// start at boot and join the public network on its own.
func disableDistroTor(ctx context.Context, sudo []string) {
	if _, err := exec.LookPath("systemctl"); err != nil {
		return
	}
	args := []string{"systemctl", "disable", "tor.service"}
	if _, err := os.Stat("/run/systemd/system"); err == nil {
		args = []string{"systemctl", "disable", "--now", "tor.service", "tor@default.service"}
	}
	if err := sh(ctx, sudo, args...); err != nil {
		fmt.Fprintf(os.Stderr, "warning: could not disable Debian's tor service (%v); run: sudo systemctl disable --now tor\n", err)
	}
}

func rootPrefix() ([]string, error) {
	if os.Geteuid() == 0 {
		return nil, nil
	}
	if _, err := exec.LookPath("sudo"); err == nil {
		return []string{"sudo"}, nil
	}
	return nil, errors.New("run as root, or install sudo")
}

func sh(ctx context.Context, prefix []string, args ...string) error {
	all := append(append([]string(nil), prefix...), args...)
	cmd := exec.CommandContext(ctx, all[0], all[1:]...)
	cmd.Stdout, cmd.Stderr = os.Stdout, os.Stderr
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("%s: %w", strings.Join(all, " "), err)
	}
	return nil
}
