//go:build linux

// Package e2e runs the built tessel-proxy binary the way a user does: a real `serve`, real
// programs (curl, python3) started through `run`, and a device in a network namespace whose
// only way out is the tunnel.
package e2e

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/tessel/tessel-proxy/internal/syncbuf"
)

// binary is the tessel-proxy built once for the whole package.
var binary string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "tessel-proxy-e2e-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	binary = filepath.Join(dir, "tessel-proxy")
	build := exec.Command("go", "build", "-o", binary, "..")
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "build tessel-proxy:", err)
		os.Exit(1)
	}
	removeStaleNetworks()
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// removeStaleNetworks deletes the namespaces and links (named tpx-*, tpx*) that an earlier run
// of these tests left behind when it was killed: their addresses would shadow this run's.
func removeStaleNetworks() {
	if os.Geteuid() != 0 {
		return
	}
	if out, err := exec.Command("ip", "netns", "list").Output(); err == nil {
		for _, line := range strings.Split(string(out), "\n") {
			if name, _, _ := strings.Cut(line, " "); strings.HasPrefix(name, "tpx-") && !ownerAlive(name) {
				exec.Command("ip", "netns", "del", name).Run()
			}
		}
	}
	if out, err := exec.Command("ip", "-o", "link", "show").Output(); err == nil {
		for _, line := range strings.Split(string(out), "\n") {
			fields := strings.Fields(line)
			if len(fields) < 2 {
				continue
			}
			name, _, _ := strings.Cut(strings.TrimSuffix(fields[1], ":"), "@")
			if strings.HasPrefix(name, "tpx") && !ownerAlive(name) {
				exec.Command("ip", "link", "del", name).Run()
			}
		}
	}
}

// ownerAlive reports whether the network named name belongs to a test binary that is still
// running: the names carry the creating process's pid plus a small offset (0-3), so that a
// second run of these tests on the same machine leaves the first run's networks alone.
func ownerAlive(name string) bool {
	i := strings.IndexAny(name, "0123456789")
	if i < 0 {
		return false
	}
	j := i
	for j < len(name) && name[j] >= '0' && name[j] <= '9' {
		j++
	}
	n, err := strconv.Atoi(name[i:j])
	if err != nil {
		return false
	}
	for k := 0; k <= 3; k++ {
		comm, err := os.ReadFile(fmt.Sprintf("/proc/%d/comm", n-k))
		if err == nil && strings.HasSuffix(strings.TrimSpace(string(comm)), ".test") {
			return true
		}
	}
	return false
}

// needRoot fails the test unless it runs as root: it makes network namespaces (CI runs as
// root).
func needRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Fatal("this test makes network namespaces and needs root (CI runs as root)")
	}
}

// needTools fails the test, naming what to install, when a tool it drives is missing.
func needTools(t *testing.T, tools ...string) {
	t.Helper()
	for _, tool := range tools {
		if _, err := exec.LookPath(tool); err != nil {
			t.Fatalf("%s is not installed: run scripts/install-deps.sh", tool)
		}
	}
}

// devServer is a running `tessel-proxy serve --dev`.
type devServer struct {
	cmd    *exec.Cmd
	env    map[string]string // the PROXY_* settings it printed
	stderr *syncbuf.Buffer
	done   chan struct{}
}

// baseEnv is a minimal environment for the processes a test starts: nothing of the
// developer's own proxy settings or credentials leaks in.
func baseEnv(t *testing.T) []string {
	home := t.TempDir()
	return []string{
		"PATH=" + os.Getenv("PATH"),
		"HOME=" + home,
		"XDG_CONFIG_HOME=" + filepath.Join(home, ".config"),
		"XDG_STATE_HOME=" + filepath.Join(home, ".local", "state"),
		"LANG=C.UTF-8",
	}
}

// startDevServer starts `serve --dev` with extra args, waits for its export lines, and stops
// it (SIGTERM) when the test ends.
func startDevServer(t *testing.T, args ...string) *devServer {
	t.Helper()
	return startDevServerIn(t, nil, args...)
}

// startDevServerIn is startDevServer with a command prefix (for example `ip netns exec NS`).
func startDevServerIn(t *testing.T, prefix []string, args ...string) *devServer {
	t.Helper()
	return startDevServerWith(t, prefix, t.TempDir(), nil, args...)
}

// startDevServerWith is startDevServerIn with the directory that holds the certificate and
// extra environment ("AUTH_HARDCODED=..."): servers started with the same directory and token
// are interchangeable to a client.
func startDevServerWith(t *testing.T, prefix []string, dir string, env []string, args ...string) *devServer {
	t.Helper()
	argv := append(append(append([]string{}, prefix...), binary, "serve", "--dev", "--log-level", "debug", "--dir", dir), args...)
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Env = append(baseEnv(t), env...)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	s := &devServer{cmd: cmd, env: map[string]string{}, stderr: &syncbuf.Buffer{}, done: make(chan struct{})}
	cmd.Stderr = s.stderr
	if err := cmd.Start(); err != nil {
		t.Fatalf("start serve --dev: %v", err)
	}
	go func() { cmd.Wait(); close(s.done) }()
	t.Cleanup(func() { s.stop(t) })

	lines := make(chan string)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			lines <- sc.Text()
		}
		close(lines)
		io.Copy(io.Discard, stdout)
	}()
	deadline := time.After(30 * time.Second)
	want := []string{"PROXY_HOST", "PROXY_PORT", "PROXY_CERT", "PROXY_TOKEN", "PROXY_LOCAL"}
	for !hasAll(s.env, want) {
		select {
		case line, ok := <-lines:
			if !ok {
				t.Fatalf("serve --dev exited before printing its settings; stderr:\n%s", s.stderr)
			}
			if k, v, ok := parseExport(line); ok {
				s.env[k] = v
			}
		case <-deadline:
			t.Fatalf("serve --dev printed no settings within 30s; stderr:\n%s", s.stderr)
		}
	}
	go func() {
		for range lines {
		}
	}()
	return s
}

func hasAll(m map[string]string, keys []string) bool {
	for _, k := range keys {
		if _, ok := m[k]; !ok {
			return false
		}
	}
	return true
}

// parseExport reads a line `export KEY='value'` (or unquoted / double-quoted).
func parseExport(line string) (key, value string, ok bool) {
	rest, found := strings.CutPrefix(strings.TrimSpace(line), "export ")
	if !found {
		return "", "", false
	}
	key, value, ok = strings.Cut(rest, "=")
	if !ok {
		return "", "", false
	}
	if n := len(value); n >= 2 && (value[0] == '\'' && value[n-1] == '\'' || value[0] == '"' && value[n-1] == '"') {
		value = value[1 : n-1]
	}
	return key, value, true
}

// stop ends the server with SIGTERM (its graceful shutdown) and waits for it.
func (s *devServer) stop(t *testing.T) {
	select {
	case <-s.done:
		return
	default:
	}
	s.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-s.done:
	case <-time.After(15 * time.Second):
		s.cmd.Process.Kill()
		<-s.done
		t.Errorf("serve did not stop within 15s of SIGTERM")
	}
}

// clientEnv is baseEnv plus the server's settings plus overrides ("KEY=VALUE").
func (s *devServer) clientEnv(t *testing.T, overrides ...string) []string {
	env := baseEnv(t)
	for k, v := range s.env {
		env = append(env, k+"="+v)
	}
	return append(env, overrides...)
}

// result is what a finished process left behind.
type result struct {
	code           int
	stdout, stderr string
}

// runTool runs the tessel-proxy binary with env and args, with a time limit, and returns its
// exit status and output.
func runTool(t *testing.T, env []string, args ...string) result {
	t.Helper()
	return runCommand(t, env, append([]string{binary}, args...)...)
}

func runCommand(t *testing.T, env []string, argv ...string) result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	cmd.Env = env
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	if ctx.Err() != nil {
		t.Fatalf("%v did not finish within 2 minutes; stderr:\n%s", argv, stderr.String())
	}
	code := 0
	if err != nil {
		ee, ok := err.(*exec.ExitError)
		if !ok {
			t.Fatalf("run %v: %v", argv, err)
		}
		code = ee.ExitCode()
	}
	return result{code: code, stdout: stdout.String(), stderr: stderr.String()}
}
