//go:build linux

package e2e

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/tessel/tessel-proxy/internal/testsshd"
)

// TestEnvSetThenRunOnDevice is the whole workflow: from this machine (the laptop), `device add`
// and `env set` push the proxy settings to a device over ssh; on the device, whose network
// namespace reaches the proxy and nothing else, `run` reads them and curl gets through.
func TestEnvSetThenRunOnDevice(t *testing.T) {
	needTools(t, "ip", "curl", "python3", "ssh")
	needRoot(t)
	suffix := fmt.Sprintf("%d", (os.Getpid()+1)%100000)
	devNS, targetNS := "tpx-dva-"+suffix, "tpx-tga-"+suffix
	const (
		laptopAddr = "198.18.9.1"
		deviceAddr = "198.18.9.2"
		tgtHost    = "198.19.9.1"
		tgtAddr    = "198.19.9.2"
	)
	makeNamespace(t, devNS, "tpxa"+suffix, laptopAddr, deviceAddr)
	makeNamespace(t, targetNS, "tpxb"+suffix, tgtHost, tgtAddr)
	url := startHTTPServerIn(t, targetNS, tgtAddr)

	srv := startDevServer(t, "--listen", laptopAddr+":0", "--allow", "198.19.0.0/16")

	// The device: sshd in its namespace; its sessions keep their configuration in deviceConfig.
	deviceConfig := t.TempDir()
	device := testsshd.Start(t, testsshd.Options{
		Host: deviceAddr, Namespace: devNS,
		Env: map[string]string{"XDG_CONFIG_HOME": deviceConfig},
	})

	// The laptop pushes the settings. Secrets and the certificate travel from local files
	// (KEY=@file), never on a command line.
	laptop := append(baseEnv(t), "TESSEL_PROXY_SSH_COMMAND="+device.SSHCommand)
	tokenFile := filepath.Join(t.TempDir(), "token")
	if err := os.WriteFile(tokenFile, []byte(srv.env["PROXY_TOKEN"]+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	steps := [][]string{
		{"device", "add", "pi", device.Address("")},
		{"env", "set", "--device", "pi", "PROXY_HOST=" + srv.env["PROXY_HOST"], "PROXY_PORT=" + srv.env["PROXY_PORT"],
			"PROXY_CERT=@" + srv.env["PROXY_CERT"], "PROXY_TOKEN=@" + tokenFile},
	}
	for _, args := range steps {
		if r := runTool(t, laptop, args...); r.code != 0 {
			t.Fatalf("%v: exit %d\n%s%s", args, r.code, r.stdout, r.stderr)
		}
	}
	listed := runTool(t, laptop, "env", "list", "--device", "pi")
	if listed.code != 0 || strings.Contains(listed.stdout, srv.env["PROXY_TOKEN"]) || !strings.Contains(listed.stdout, "PROXY_TOKEN") {
		t.Fatalf("env list on the device (token must be masked): exit %d\n%s%s", listed.code, listed.stdout, listed.stderr)
	}

	// On the device: no PROXY_* in the session's environment, only the env file.
	ssh := []string{"ssh", "-F", device.ClientConfig, "-p", fmt.Sprint(device.Port), device.User + "@" + deviceAddr}
	// curl's own exit status: 7 (could not connect) or 28 (timed out), not ssh's 255.
	direct := runCommand(t, baseEnv(t), append(ssh, "curl -sS --max-time 5 "+url)...)
	if direct.code != 7 && direct.code != 28 {
		t.Fatalf("curl on the device without the tunnel: exit %d (want 7 or 28), %q %s", direct.code, direct.stdout, direct.stderr)
	}
	route := runCommand(t, baseEnv(t), append(ssh, binary+" route "+tgtAddr+":8080")...)
	if !strings.HasPrefix(route.stdout, "proxy") {
		t.Errorf("route on the device: %q (exit %d, %s)", route.stdout, route.code, route.stderr)
	}
	got := runCommand(t, baseEnv(t), append(ssh, binary+" run -- curl -sS --fail --max-time 20 "+url)...)
	if got.code != 0 || got.stdout != greeting {
		t.Fatalf("run on the device: exit %d, stdout %q, stderr:\n%s\nserve log:\n%s", got.code, got.stdout, got.stderr, srv.stderr)
	}
}

// TestLocalEnvFileFeedsRunAndRoute: what `env set` writes on this machine is what `run` and
// `route` read, and the process environment still wins over it.
func TestLocalEnvFileFeedsRunAndRoute(t *testing.T) {
	needTools(t, "curl")
	srv := startDevServer(t)
	target := greetingServer(t, false)
	env := baseEnv(t) // same HOME for every step below
	set := []string{"env", "set"}
	for k, v := range srv.env {
		if k == "PROXY_TOKEN" {
			continue
		}
		set = append(set, k+"="+v)
	}
	if r := runTool(t, env, set...); r.code != 0 {
		t.Fatalf("env set: exit %d\n%s", r.code, r.stderr)
	}
	tokenEnv := append(env, "PROXY_TOKEN="+srv.env["PROXY_TOKEN"])
	if r := runTool(t, tokenEnv, "route", "127.0.0.1"); !strings.HasPrefix(r.stdout, "proxy") {
		t.Errorf("route after env set PROXY_LOCAL=none: %q (exit %d, %s)", r.stdout, r.code, r.stderr)
	}
	if r := runTool(t, tokenEnv, "run", "--", "curl", "-sS", "--fail", target.URL); r.code != 0 || r.stdout != greeting {
		t.Fatalf("run with settings from the env file: exit %d, stdout %q\n%s", r.code, r.stdout, r.stderr)
	}
	if r := runTool(t, env, "env", "set", "PROXY_LOCAL=127.0.0.0/8"); r.code != 0 {
		t.Fatalf("env set PROXY_LOCAL: exit %d\n%s", r.code, r.stderr)
	}
	if r := runTool(t, tokenEnv, "route", "127.0.0.1"); !strings.HasPrefix(r.stdout, "direct") || !strings.Contains(r.stdout, "127.0.0.0/8") {
		t.Errorf("route after env set PROXY_LOCAL=127.0.0.0/8: %q", r.stdout)
	}
	if r := runTool(t, append(tokenEnv, "PROXY_LOCAL=none"), "route", "127.0.0.1"); !strings.HasPrefix(r.stdout, "proxy") {
		t.Errorf("the environment should win over the env file: %q", r.stdout)
	}
}
