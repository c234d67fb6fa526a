package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"

	"github.com/evanw/esbuild/pkg/api"
)

// The page's third-party JavaScript: web/mls holds what it depends on
// (package.json, pinned with integrity hashes by package-lock.json) and
// the one module it imports (entry.mjs); `go run ./internal/make js`
// installs exactly the locked packages with `npm ci` in a cache directory
// and bundles them with esbuild into the files below, which the binary
// embeds. The test command runs it with -check: the embedded files must
// be, byte for byte, what this step builds.
const (
	jsSrcDir     = "web/mls"
	jsBundle     = "web/static/vendor/mls.mjs"
	jsLicences   = "web/static/vendor/LICENSES.txt"
	jsEntry      = "entry.mjs"
	jsStub       = "unavailable.mjs"
	jsLockfile   = "package-lock.json"
	jsCheckHint  = "go run ./internal/make js"
	jsOptionalRe = `^@noble/|^@hpke/(chacha20poly1305|dhkem-x448|hybridkem-x-wing|ml-kem)`
)

func jsCommand(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("js", flag.ContinueOnError)
	check := fs.Bool("check", false, "build into memory and fail if the committed files differ")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if err := chdirRoot(); err != nil {
		return err
	}
	return buildJS(ctx, *check)
}

// buildJS builds the bundle and its licence file; with check it compares
// them with the committed ones instead of writing them.
func buildJS(ctx context.Context, check bool) error {
	lock, err := os.ReadFile(filepath.Join(jsSrcDir, jsLockfile))
	if err != nil {
		return fmt.Errorf("js: %w", err)
	}
	modules, err := npmInstall(ctx, lock)
	if err != nil {
		return err
	}
	bundle, err := bundleJS(modules)
	if err != nil {
		return err
	}
	licences, err := bundleLicences(modules, lock)
	if err != nil {
		return err
	}
	want := []struct {
		path string
		body []byte
	}{{jsBundle, bundle}, {jsLicences, licences}}
	for _, w := range want {
		if check {
			have, err := os.ReadFile(w.path)
			if err != nil {
				return fmt.Errorf("js: %w (run %s)", err, jsCheckHint)
			}
			if !bytes.Equal(have, w.body) {
				return fmt.Errorf("js: %s is not what %s builds from %s/%s (sha256 %s, built %s): run %s and commit the result",
					w.path, jsSrcDir, jsSrcDir, jsLockfile, short(have), short(w.body), jsCheckHint)
			}
			continue
		}
		if err := os.MkdirAll(filepath.Dir(w.path), 0o755); err != nil {
			return err
		}
		if err := os.WriteFile(w.path, w.body, 0o644); err != nil {
			return err
		}
	}
	if check {
		fmt.Printf("js: %s and %s are what %s/%s builds (%d bytes)\n", jsBundle, jsLicences, jsSrcDir, jsLockfile, len(bundle))
	} else {
		fmt.Printf("js: wrote %s (%d bytes) and %s\n", jsBundle, len(bundle), jsLicences)
	}
	return nil
}

func short(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:6])
}

// npmInstall runs `npm ci` on a copy of web/mls, with lock as its
// lockfile, in a cache directory named after lock's hash, once per
// lockfile, and returns the directory holding node_modules. npm checks
// every package against the lockfile's integrity hash; install scripts
// never run (.npmrc).
func npmInstall(ctx context.Context, lock []byte) (string, error) {
	cache, err := os.UserCacheDir()
	if err != nil {
		cache = os.TempDir()
	}
	sum := sha256.Sum256(lock)
	dir := filepath.Join(cache, "onionchat-make", "npm-"+hex.EncodeToString(sum[:8]))
	if _, err := os.Stat(filepath.Join(dir, "node_modules", ".package-lock.json")); err == nil {
		return dir, nil
	}
	if _, err := exec.LookPath("npm"); err != nil {
		return "", fmt.Errorf("js: npm is missing (install Debian's npm, or run go run ./internal/make test, which does)")
	}
	tmp := dir + ".tmp"
	os.RemoveAll(tmp)
	if err := os.MkdirAll(tmp, 0o755); err != nil {
		return "", err
	}
	if err := copySrc(tmp, "package.json", ".npmrc"); err != nil {
		return "", err
	}
	if err := os.WriteFile(filepath.Join(tmp, jsLockfile), lock, 0o644); err != nil {
		return "", err
	}
	cmd := exec.CommandContext(ctx, "npm", "ci", "--ignore-scripts", "--no-audit", "--no-fund")
	cmd.Dir = tmp
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("js: npm ci in a copy of %s: %w\n%s", jsSrcDir, err, out.String())
	}
	os.RemoveAll(dir)
	if err := os.Rename(tmp, dir); err != nil {
		return "", err
	}
	return dir, nil
}

// bundleJS bundles entry.mjs with the packages in dir/node_modules into one
// ES module. The build runs in dir with the entry copied there, so that the
// paths esbuild writes into its comments are the same on every machine.
func bundleJS(dir string) ([]byte, error) {
	if err := copySrc(dir, jsEntry, jsStub); err != nil {
		return nil, err
	}
	stub := filepath.Join(dir, jsStub)
	optional := api.Plugin{
		Name: "optional-packages",
		Setup: func(b api.PluginBuild) {
			b.OnResolve(api.OnResolveOptions{Filter: jsOptionalRe}, func(api.OnResolveArgs) (api.OnResolveResult, error) {
				return api.OnResolveResult{Path: stub}, nil
			})
		},
	}
	res := api.Build(api.BuildOptions{
		EntryPoints:       []string{jsEntry},
		AbsWorkingDir:     dir,
		Bundle:            true,
		Format:            api.FormatESModule,
		Platform:          api.PlatformBrowser,
		Target:            api.ES2022,
		MinifySyntax:      true,
		MinifyWhitespace:  true,
		MinifyIdentifiers: true,
		TreeShaking:       api.TreeShakingTrue,
		LegalComments:     api.LegalCommentsEndOfFile,
		Charset:           api.CharsetUTF8,
		Banner:            map[string]string{"js": "// ts-mls (MIT) and @hpke (MIT), bundled from web/mls by go run ./internal/make js; licences in LICENSES.txt beside this file."},
		Plugins:           []api.Plugin{optional},
		Write:             false,
		LogLevel:          api.LogLevelSilent,
	})
	if len(res.Errors) > 0 {
		var msgs []string
		for _, m := range res.Errors {
			msgs = append(msgs, m.Text)
		}
		return nil, fmt.Errorf("js: esbuild: %s", strings.Join(msgs, "; "))
	}
	if len(res.OutputFiles) != 1 {
		return nil, errors.New("js: esbuild wrote no single output")
	}
	return res.OutputFiles[0].Contents, nil
}

// copySrc copies the named files of web/mls into dir.
func copySrc(dir string, names ...string) error {
	for _, f := range names {
		b, err := os.ReadFile(filepath.Join(jsSrcDir, f))
		if err != nil {
			return fmt.Errorf("js: %w", err)
		}
		if err := os.WriteFile(filepath.Join(dir, f), b, 0o644); err != nil {
			return err
		}
	}
	return nil
}

// bundleLicences lists every package installed (in dir) from the
// lockfile lock, with its version and licence text, in name order.
func bundleLicences(dir string, lock []byte) ([]byte, error) {
	var locked struct {
		Packages map[string]struct {
			Version string `json:"version"`
			License string `json:"license"`
		} `json:"packages"`
	}
	if err := json.Unmarshal(lock, &locked); err != nil {
		return nil, fmt.Errorf("js: %s: %w", jsLockfile, err)
	}
	var names []string
	for p := range locked.Packages {
		if p != "" {
			names = append(names, p)
		}
	}
	sort.Strings(names)
	var out bytes.Buffer
	out.WriteString("The third-party JavaScript in mls.mjs, as pinned by web/mls/package-lock.json.\n")
	for _, p := range names {
		pkg := locked.Packages[p]
		text, err := licenceTexts(filepath.Join(dir, p))
		if err != nil {
			return nil, fmt.Errorf("js: %w", err)
		}
		if text == "" {
			return nil, fmt.Errorf("js: %s ships no licence file; cannot bundle it without one", filepath.Join(dir, p))
		}
		fmt.Fprintf(&out, "\n==== %s %s (%s)\n\n%s\n", strings.TrimPrefix(p, "node_modules/"), pkg.Version, pkg.License, text)
	}
	return out.Bytes(), nil
}
