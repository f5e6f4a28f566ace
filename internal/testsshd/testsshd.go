// Package testsshd starts a real OpenSSH server on 127.0.0.1 for tests, with throwaway host
// and user keys, and writes the matching client configuration.
//
// Tests run as root (as in CI): sshd then lets the test log in as the user running it.
package testsshd

import (
	"bytes"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/tessel/tessel-proxy/internal/shellquote"
)

// Options change how the server runs sessions.
type Options struct {
	// BusyBox runs every session's command under BusyBox sh with a PATH that holds only
	// BusyBox applets, like a small embedded device: no bash, no python, no util-linux.
	BusyBox bool
	// Env is set in every session (sshd's SetEnv), e.g. HOME or XDG_CONFIG_HOME pointing
	// into a temporary directory so that default remote paths stay inside the test.
	Env map[string]string
	// Host is the address sshd listens on; default 127.0.0.1.
	Host string
	// Namespace, when set, runs sshd inside that network namespace (`ip netns exec`), so that
	// its sessions see only that namespace's network: a device on a network of its own.
	Namespace string
}

// Server is a running sshd.
type Server struct {
	Port int
	Host string // the address sshd listens on
	User string // the login user (the one running the test)
	Dir  string // holds the keys, configs and, for BusyBox, the applet directory
	// ClientConfig is an ssh_config file for `ssh -F`: it pins the host key, names the user
	// key and keeps the real ~/.ssh out of the test.
	ClientConfig string
	// SSHCommand is an ssh command line (for TESSEL_PROXY_SSH_COMMAND) that uses ClientConfig.
	SSHCommand string

	namespace string
	cmd       *exec.Cmd
	stderr    *bytes.Buffer
	done      chan error
}

// Start starts sshd and stops it when the test ends. A missing OpenSSH fails the test with
// what to install.
func Start(t testing.TB, opts Options) *Server {
	t.Helper()
	for _, tool := range []string{"/usr/sbin/sshd", "ssh", "ssh-keygen"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Fatalf("testsshd needs %s: install openssh-server and openssh-client (%v)", tool, err)
		}
	}
	if opts.BusyBox {
		if _, err := exec.LookPath("busybox"); err != nil {
			t.Fatalf("testsshd BusyBox mode needs busybox: install the busybox package (%v)", err)
		}
	}
	u, err := user.Current()
	if err != nil {
		t.Fatal(err)
	}
	// sshd refuses to start without its privilege separation directory.
	if err := os.MkdirAll("/run/sshd", 0o755); err != nil {
		t.Fatalf("create /run/sshd (tests with sshd run as root): %v", err)
	}
	dir := t.TempDir()
	s := &Server{User: u.Username, Host: opts.Host, Dir: dir, ClientConfig: filepath.Join(dir, "ssh_config"), namespace: opts.Namespace}
	if s.Host == "" {
		s.Host = "127.0.0.1"
	}
	keygen(t, filepath.Join(dir, "host_key"))
	keygen(t, filepath.Join(dir, "id_user"))
	userPub, err := os.ReadFile(filepath.Join(dir, "id_user.pub"))
	if err != nil {
		t.Fatal(err)
	}
	writeFile(t, filepath.Join(dir, "authorized_keys"), string(userPub))
	hostPub, err := os.ReadFile(filepath.Join(dir, "host_key.pub"))
	if err != nil {
		t.Fatal(err)
	}

	var force string
	if opts.BusyBox {
		bb := filepath.Join(dir, "busybox-bin")
		if err := os.Mkdir(bb, 0o755); err != nil {
			t.Fatal(err)
		}
		if out, err := exec.Command("busybox", "--install", "-s", bb).CombinedOutput(); err != nil {
			t.Fatalf("busybox --install: %v: %s", err, out)
		}
		// sshd runs ForceCommand through the user's login shell; from there on only BusyBox
		// applets are on PATH, so the client's `sh -c ...` runs under BusyBox sh.
		force = fmt.Sprintf("ForceCommand PATH=%s; export PATH; exec sh -c \"$SSH_ORIGINAL_COMMAND\"\n", bb)
	}

	if len(opts.Env) > 0 {
		keys := make([]string, 0, len(opts.Env))
		for k := range opts.Env {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		force += "SetEnv"
		for _, k := range keys {
			force += fmt.Sprintf(" \"%s=%s\"", k, opts.Env[k])
		}
		force += "\n"
	}

	var lastErr error
	for attempt := 0; attempt < 5; attempt++ {
		s.Port = freePort(t)
		config := fmt.Sprintf(`Port %d
ListenAddress %s
HostKey %s
PidFile %s
AuthorizedKeysFile %s
PermitRootLogin yes
StrictModes no
MaxStartups 100
MaxSessions 100
PasswordAuthentication no
KbdInteractiveAuthentication no
UsePAM no
PrintMotd no
LogLevel ERROR
%s`, s.Port, s.Host, filepath.Join(dir, "host_key"), filepath.Join(dir, "sshd.pid"),
			filepath.Join(dir, "authorized_keys"), force)
		writeFile(t, filepath.Join(dir, "sshd_config"), config)
		if lastErr = s.start(); lastErr == nil {
			break
		}
	}
	if lastErr != nil {
		t.Fatalf("start sshd: %v", lastErr)
	}
	t.Cleanup(s.stop)

	hostKey := strings.Fields(string(hostPub))
	writeFile(t, filepath.Join(dir, "known_hosts"),
		fmt.Sprintf("[%s]:%d %s %s\n", s.Host, s.Port, hostKey[0], hostKey[1]))
	writeFile(t, s.ClientConfig, fmt.Sprintf(`Host *
  IdentityFile %s
  IdentitiesOnly yes
  UserKnownHostsFile %s
  GlobalKnownHostsFile /dev/null
  StrictHostKeyChecking yes
  ConnectTimeout 10
  LogLevel ERROR
`, filepath.Join(dir, "id_user"), filepath.Join(dir, "known_hosts")))
	s.SSHCommand = "ssh -F " + shellquote.Quote(s.ClientConfig)
	return s
}

// Address returns the device address ssh://user@host:port followed by path (which, when
// not empty, starts with /).
func (s *Server) Address(path string) string {
	return fmt.Sprintf("ssh://%s@%s%s", s.User, net.JoinHostPort(s.Host, fmt.Sprint(s.Port)), path)
}

func (s *Server) start() error {
	s.stderr = &bytes.Buffer{}
	argv := []string{"/usr/sbin/sshd", "-D", "-e", "-f", filepath.Join(s.Dir, "sshd_config")}
	if s.namespace != "" {
		argv = append([]string{"ip", "netns", "exec", s.namespace}, argv...)
	}
	s.cmd = exec.Command(argv[0], argv[1:]...)
	s.cmd.Stderr = s.stderr
	// If the test binary dies (a timeout panic skips Cleanup), sshd goes with it.
	s.cmd.SysProcAttr = dieWithParent()
	if err := s.cmd.Start(); err != nil {
		return err
	}
	s.done = make(chan error, 1)
	go func() { s.done <- s.cmd.Wait() }()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		select {
		case err := <-s.done:
			return fmt.Errorf("sshd exited: %v: %s", err, s.stderr.String())
		default:
		}
		c, err := net.Dial("tcp", net.JoinHostPort(s.Host, fmt.Sprint(s.Port)))
		if err == nil {
			c.Close()
			return nil
		}
		time.Sleep(20 * time.Millisecond)
	}
	s.stop()
	return fmt.Errorf("sshd did not listen on port %d", s.Port)
}

func (s *Server) stop() {
	_ = s.cmd.Process.Kill()
	<-s.done
}

func keygen(t testing.TB, path string) {
	t.Helper()
	out, err := exec.Command("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "testsshd", "-f", path).CombinedOutput()
	if err != nil {
		t.Fatalf("ssh-keygen: %v: %s", err, out)
	}
}

func writeFile(t testing.TB, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
}

func freePort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}
