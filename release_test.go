package main

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"
)

// goreleaserTargets reads the targets list of .goreleaser.yaml (goos_goarch[_variant]).
func goreleaserTargets(t *testing.T) []string {
	t.Helper()
	f, err := os.Open(".goreleaser.yaml")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var targets []string
	in := false
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		switch {
		case line == "targets:":
			in = true
		case in && strings.HasPrefix(line, "- "):
			targets = append(targets, strings.TrimSpace(strings.TrimPrefix(line, "- ")))
		case in && line != "" && !strings.HasPrefix(line, "#"):
			in = false
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return targets
}

// targetEnv turns a goreleaser target into the environment of `go build`.
func targetEnv(target string) ([]string, error) {
	parts := strings.Split(target, "_")
	if len(parts) < 2 || len(parts) > 3 {
		return nil, fmt.Errorf("target %q is not goos_goarch[_variant]", target)
	}
	env := []string{"GOOS=" + parts[0], "GOARCH=" + parts[1], "CGO_ENABLED=0"}
	if len(parts) == 3 {
		variable := map[string]string{"amd64": "GOAMD64", "arm64": "GOARM64", "arm": "GOARM",
			"mips": "GOMIPS", "mipsle": "GOMIPS", "386": "GO386"}[parts[1]]
		if variable == "" {
			return nil, fmt.Errorf("target %q: no variant known for %s", target, parts[1])
		}
		env = append(env, variable+"="+parts[2])
	}
	return env, nil
}

func TestReleaseTargetsCrossCompile(t *testing.T) {
	targets := goreleaserTargets(t)
	for _, want := range []string{
		"linux_amd64_v1", "linux_arm64_v8.0", "darwin_amd64_v1", "darwin_arm64_v8.0",
		"windows_amd64_v1", "windows_arm64_v8.0", "linux_arm_7", "linux_mipsle_softfloat",
	} {
		if !slices.Contains(targets, want) {
			t.Errorf(".goreleaser.yaml does not build %s (targets: %q)", want, targets)
		}
	}
	// The builds share the build cache. Each spends part of its time linking on one core, so
	// twice as many builds as cores keep every core busy.
	sem := make(chan struct{}, 2*runtime.NumCPU())
	var wg sync.WaitGroup
	for _, target := range targets {
		env, err := targetEnv(target)
		if err != nil {
			t.Error(err)
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			sem <- struct{}{}
			defer func() { <-sem }()
			cmd := exec.Command("go", "build", "-trimpath", "-o", os.DevNull, ".")
			cmd.Env = append(os.Environ(), env...)
			if out, err := cmd.CombinedOutput(); err != nil {
				t.Errorf("%s: go build: %v\n%s", target, err, out)
			}
		}()
	}
	wg.Wait()
}

func TestMakeInstall(t *testing.T) {
	if _, err := exec.LookPath("make"); err != nil {
		t.Fatal("make install needs make: apt-get install make")
	}
	tmp := t.TempDir()
	prefix := filepath.Join(tmp, "prefix")
	const version, commit = "v1.2.3-test", "0123456789abcdef0123456789abcdef01234567"
	cmd := exec.Command("make", "install", "PREFIX="+prefix, "BUILD="+filepath.Join(tmp, "build"),
		"VERSION="+version, "COMMIT="+commit)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("make install: %v\n%s", err, out)
	}
	for _, f := range []string{
		"bin/tessel-proxy",
		"share/bash-completion/completions/tessel-proxy",
		"share/zsh/site-functions/_tessel-proxy",
		"share/fish/vendor_completions.d/tessel-proxy.fish",
		"share/man/man1/tessel-proxy.1",
		"share/man/man1/tessel-proxy-env.1",
	} {
		if _, err := os.Stat(filepath.Join(prefix, f)); err != nil {
			t.Errorf("make install did not install %s: %v", f, err)
		}
	}

	bin := filepath.Join(prefix, "bin", "tessel-proxy")
	for _, args := range [][]string{{"version"}, {"--version"}} {
		out, err := exec.Command(bin, args...).Output()
		want := "tessel-proxy version " + version + " (commit " + commit[:12] + ", "
		if err != nil || !strings.HasPrefix(string(out), want) {
			t.Errorf("tessel-proxy %s = %q (%v), want it to start with %q", args[0], out, err, want)
		}
	}

	// The installed pages are found by man through the prefix, by the command's name.
	cmd = exec.Command("man", "-w", "tessel-proxy-env")
	cmd.Env = append(os.Environ(), "MANPATH="+filepath.Join(prefix, "share", "man"))
	if out, err := cmd.CombinedOutput(); err != nil || !strings.HasPrefix(string(out), prefix) {
		t.Errorf("man -w tessel-proxy-env with MANPATH at the prefix: %q (%v)", out, err)
	}

	// The installed bash script registers completion for the program.
	script := `source /usr/share/bash-completion/bash_completion; source "$1"; complete -p tessel-proxy`
	out, err := exec.Command("bash", "--norc", "-c", script, "bash",
		filepath.Join(prefix, "share/bash-completion/completions/tessel-proxy")).CombinedOutput()
	if err != nil || !bytes.Contains(out, []byte("-F _tessel_proxy tessel-proxy")) {
		t.Errorf("sourcing the installed bash completion: %q (%v)", out, err)
	}
}

// Without -ldflags, `version` reports what the Go toolchain recorded: the VCS commit.
func TestVersionFallsBackToBuildInfo(t *testing.T) {
	head, err := exec.Command("git", "rev-parse", "HEAD").Output()
	if err != nil {
		t.Fatalf("git rev-parse HEAD: %v (the test needs git and a clone of the repository)", err)
	}
	bin := filepath.Join(t.TempDir(), "tessel-proxy")
	build := exec.Command("go", "build", "-buildvcs=true", "-o", bin, ".")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build -buildvcs=true: %v\n%s", err, out)
	}
	out, err := exec.Command(bin, "version").Output()
	want := "(commit " + string(head[:12])
	if err != nil || !strings.Contains(string(out), want) {
		t.Errorf("tessel-proxy version = %q (%v), want it to contain %q", out, err, want)
	}
}
