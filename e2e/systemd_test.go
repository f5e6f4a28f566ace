//go:build linux

package e2e

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// TestSystemdUnitVerifies checks deploy/systemd/tessel-proxy.service with systemd-analyze: the
// unit must load without a single warning (systemd ignores a misspelt or invalid setting with
// a warning and exits 0, so a typo would silently drop a protection), every flag of its
// ExecStart must be one that serve has, and its exposure score is logged. ExecStart points
// at the binary under test, since verify checks that the program exists.
//
// systemd-analyze verify and security --offline need no running systemd, so they work in a
// container. Where systemd-analyze is missing the test fails, naming the package to install
// (scripts/install-deps.sh installs it).
func TestSystemdUnitVerifies(t *testing.T) {
	analyze, err := exec.LookPath("systemd-analyze")
	if err != nil {
		t.Fatal("systemd-analyze is not installed: install the Debian package systemd (scripts/install-deps.sh does)")
	}
	unit, err := os.ReadFile(filepath.Join("..", "deploy", "systemd", "tessel-proxy.service"))
	if err != nil {
		t.Fatal(err)
	}
	text := strings.ReplaceAll(string(unit), "/usr/local/bin/tessel-proxy", binary)
	if text == string(unit) {
		t.Fatal("the unit's ExecStart is not /usr/local/bin/tessel-proxy")
	}
	path := filepath.Join(t.TempDir(), "tessel-proxy.service")
	if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}

	out, err := exec.Command(analyze, "verify", path).CombinedOutput()
	if err != nil || strings.Contains(string(out), "tessel-proxy.service") {
		t.Errorf("systemd-analyze verify: %v\n%s", err, out)
	}

	// Every flag in ExecStart is one serve knows (serve --help lists them).
	help := runTool(t, baseEnv(t), "serve", "--help")
	start := regexp.MustCompile(`(?ms)^ExecStart=(.*?[^\\])$`).FindStringSubmatch(text)
	if start == nil {
		t.Fatal("no ExecStart")
	}
	for _, flag := range regexp.MustCompile(`--[a-z-]+`).FindAllString(start[1], -1) {
		if !strings.Contains(help.stdout+help.stderr, flag+" ") {
			t.Errorf("ExecStart uses %s, which serve --help does not list", flag)
		}
	}

	out, err = exec.Command(analyze, "security", "--offline=yes", path).CombinedOutput()
	if err != nil {
		t.Fatalf("systemd-analyze security: %v\n%s", err, out)
	}
	for _, line := range strings.Split(string(out), "\n") {
		if strings.Contains(line, "Overall exposure level") {
			t.Log(strings.TrimSpace(line))
		}
	}
}
