//go:build linux

package deviceenv

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// scriptShell is a shell for remoteScript to run under, with the PATH it gets.
type scriptShell struct {
	name string
	argv []string
	path string
}

// scriptShells are the shells remoteScript must work under: the machine's sh with its
// coreutils, BusyBox sh with only BusyBox applets (a small device), and the same without
// mktemp (BusyBox builds leave applets out), where the script falls back to noclobber.
func scriptShells(t *testing.T) []scriptShell {
	t.Helper()
	if _, err := exec.LookPath("busybox"); err != nil {
		t.Fatal("busybox is not installed: run scripts/install-deps.sh")
	}
	bb := t.TempDir()
	if out, err := exec.Command("busybox", "--install", "-s", bb).CombinedOutput(); err != nil {
		t.Fatalf("busybox --install: %v: %s", err, out)
	}
	noMktemp := t.TempDir()
	entries, err := os.ReadDir(bb)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if e.Name() != "mktemp" {
			os.Symlink(filepath.Join(bb, e.Name()), filepath.Join(noMktemp, e.Name()))
		}
	}
	return []scriptShell{
		{"sh", []string{"sh", "-c"}, os.Getenv("PATH")},
		{"busybox sh", []string{filepath.Join(bb, "sh"), "-c"}, bb},
		{"busybox sh without mktemp", []string{filepath.Join(noMktemp, "sh"), "-c"}, noMktemp},
	}
}

// runScriptAsPID1 runs remoteScript's write of content to path, as PID 1 of a PID namespace
// of its own, so that the script's $$ is 1 and a name built from it is known in advance.
// extraPath goes before the shell's PATH; env is added to the script's environment.
func runScriptAsPID1(t *testing.T, sh scriptShell, path, extraPath, content string, env ...string) string {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Fatal("this test makes a PID namespace and needs root (CI runs as root)")
	}
	argv := append([]string{"unshare", "--pid", "--fork"}, sh.argv...)
	cmd := exec.Command(argv[0], append(argv[1:], remoteScript)...)
	p := sh.path
	if extraPath != "" {
		p = extraPath + ":" + p
	}
	cmd.Env = append([]string{"PATH=" + p, "HOME=" + t.TempDir()}, env...)
	cmd.Stdin = strings.NewReader("write\n" + path + "\n" + strconv.Itoa(len(content)) + "\n" + content)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		t.Fatalf("remote script: %v\n%s", err, out.String())
	}
	return out.String()
}

// TestRemoteScriptTempFileIsNotPredictable plants, where a predictable temporary name would
// be, a symlink to a file of the user's: the write must create a file of its own and leave
// the other file alone (the old $p.tmp.$$ name wrote through the link and then renamed the
// link over the env file).
func TestRemoteScriptTempFileIsNotPredictable(t *testing.T) {
	for _, sh := range scriptShells(t) {
		t.Run(sh.name, func(t *testing.T) {
			dir := t.TempDir()
			path := filepath.Join(dir, "env")
			victim := filepath.Join(dir, "victim")
			if err := os.WriteFile(victim, []byte("precious"), 0o600); err != nil {
				t.Fatal(err)
			}
			for _, name := range []string{"env.tmp.1", "env.tmp.1.0", "env.tmp.1.1"} {
				if err := os.Symlink(victim, filepath.Join(dir, name)); err != nil {
					t.Fatal(err)
				}
			}
			out := runScriptAsPID1(t, sh, path, "", "A='new'\n")
			if !strings.Contains(out, "TESSEL-PROXY-ENV-DONE") {
				t.Fatalf("no DONE marker:\n%s", out)
			}
			if got := readFileString(t, victim); got != "precious" {
				t.Errorf("the file behind the planted link now holds %q: the script wrote through it", got)
			}
			fi, err := os.Lstat(path)
			if err != nil {
				t.Fatal(err)
			}
			if !fi.Mode().IsRegular() {
				t.Errorf("the env file is %s, want a regular file", fi.Mode())
			}
			if got := readFileString(t, path); got != "A='new'\n" {
				t.Errorf("env file holds %q", got)
			}
			left, _ := filepath.Glob(filepath.Join(dir, "env.tmp.*"))
			if len(left) != 3 {
				t.Errorf("temporary files left behind: %v", left)
			}
		})
	}
}

// syncShim is a `sync` that records, for each file it is asked to sync, the file's content
// and the env file's content at that moment, then runs the real sync. A shim is the way to
// see when the script syncs; the real sync still runs.
const syncShim = `#!/bin/sh
for f in "$@"; do
  [ "$f" = -- ] && continue
  printf 'sync %s: %s | env: %s\n' "$f" "$(cat "$f")" "$(cat "$ENVFILE" 2>/dev/null)" >> "$SYNCLOG"
done
[ $# -eq 0 ] && echo "sync (all)" >> "$SYNCLOG"
exec "$BUSYBOX" sync "$@"
`

// TestRemoteScriptSyncsBeforeRename: the new content is on disk before the rename makes it
// the env file, so that a crash right after leaves the old file or the whole new one.
func TestRemoteScriptSyncsBeforeRename(t *testing.T) {
	for _, sh := range scriptShells(t) {
		t.Run(sh.name, func(t *testing.T) {
			dir := t.TempDir()
			path := filepath.Join(dir, "env")
			if err := os.WriteFile(path, []byte("A='old'\n"), 0o600); err != nil {
				t.Fatal(err)
			}
			shim := t.TempDir()
			if err := os.WriteFile(filepath.Join(shim, "sync"), []byte(syncShim), 0o755); err != nil {
				t.Fatal(err)
			}
			log := filepath.Join(t.TempDir(), "sync.log")
			busybox, _ := exec.LookPath("busybox")
			out := runScriptAsPID1(t, sh, path, shim, "A='new'\n", "SYNCLOG="+log, "ENVFILE="+path, "BUSYBOX="+busybox)
			if !strings.Contains(out, "TESSEL-PROXY-ENV-DONE") {
				t.Fatalf("no DONE marker:\n%s", out)
			}
			got := readFileString(t, log)
			if !strings.Contains(got, ": A='new' | env: A='old'") {
				t.Errorf("the temporary file was not synced, complete, before the rename; sync calls:\n%s", got)
			}
		})
	}
}

func readFileString(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
