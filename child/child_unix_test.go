//go:build unix

package child

import (
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/tessel/tessel-proxy/internal/syncbuf"
)

// run starts o with output collected, and returns the status, stdout and the error.
func run(t *testing.T, ctx context.Context, o Options) (int, string, error) {
	t.Helper()
	var out syncbuf.Buffer
	o.Stdin, o.Stdout = strings.NewReader(""), &out
	if o.Stderr == nil {
		o.Stderr = &out
	}
	if o.Env == nil {
		o.Env = []string{"PATH=" + os.Getenv("PATH")}
	}
	status, err := Run(ctx, o)
	return status, out.String(), err
}

func TestRunExitStatus(t *testing.T) {
	dir := t.TempDir()
	notExec := filepath.Join(dir, "script")
	if err := os.WriteFile(notExec, []byte("#!/bin/sh\necho hi\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name    string
		program string
		args    []string
		want    int
		wantErr string // "" for none
		wantOut string
	}{
		{"success", "sh", []string{"-c", "echo fine"}, 0, "", "fine\n"},
		{"the program's status", "sh", []string{"-c", "exit 3"}, 3, "", ""},
		{"status 255", "sh", []string{"-c", "exit 255"}, 255, "", ""},
		{"killed by SIGTERM", "sh", []string{"-c", "kill -TERM $$"}, 128 + int(syscall.SIGTERM), "", ""},
		{"killed by SIGKILL", "sh", []string{"-c", "kill -KILL $$"}, 128 + int(syscall.SIGKILL), "", ""},
		{"not found in PATH", "no-such-program-3f9a", nil, ExitNotFound, "no-such-program-3f9a: program not found", ""},
		{"no such path", filepath.Join(dir, "missing"), nil, ExitNotFound, filepath.Join(dir, "missing") + ": program not found", ""},
		{"not executable", notExec, nil, ExitNotExecutable, notExec + ": cannot execute: permission denied", ""},
		{"a directory", dir, nil, ExitNotExecutable, dir + ": cannot execute: is a directory", ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			status, out, err := run(t, context.Background(), Options{Program: tc.program, Args: tc.args})
			if status != tc.want {
				t.Errorf("status %d, want %d (err %v)", status, tc.want, err)
			}
			if tc.wantErr == "" && err != nil {
				t.Errorf("error %v, want none: the program ended on its own", err)
			}
			if tc.wantErr != "" && (err == nil || err.Error() != tc.wantErr) {
				t.Errorf("error %v, want %q", err, tc.wantErr)
			}
			if out != tc.wantOut {
				t.Errorf("output %q, want %q", out, tc.wantOut)
			}
		})
	}
}

func TestRunOptions(t *testing.T) {
	t.Run("Env is the whole environment", func(t *testing.T) {
		t.Setenv("TESSEL_PROXY_TEST_PROCESS_ONLY", "x")
		_, out, _ := run(t, context.Background(), Options{Program: "env", Env: []string{"A=1", "B=two words"}})
		if out != "A=1\nB=two words\n" {
			t.Errorf("env printed %q, want exactly the given variables", out)
		}
	})
	t.Run("nil Env is empty", func(t *testing.T) {
		var out syncbuf.Buffer
		status, err := Run(context.Background(), Options{Program: "env", Stdout: &out})
		if status != 0 || err != nil || out.String() != "" {
			t.Errorf("status %d, err %v, env printed %q; want nothing", status, err, out.String())
		}
	})
	t.Run("Dir", func(t *testing.T) {
		dir, err := filepath.EvalSymlinks(t.TempDir())
		if err != nil {
			t.Fatal(err)
		}
		_, out, _ := run(t, context.Background(), Options{Program: "sh", Args: []string{"-c", "pwd -P"}, Dir: dir})
		if out != dir+"\n" {
			t.Errorf("pwd %q, want %q", out, dir)
		}
	})
	t.Run("ExtraFiles are fd 3 on", func(t *testing.T) {
		r, w, err := os.Pipe()
		if err != nil {
			t.Fatal(err)
		}
		defer r.Close()
		status, _, err := run(t, context.Background(), Options{Program: "sh", Args: []string{"-c", "echo via-fd-3 >&3"},
			ExtraFiles: []*os.File{w}})
		w.Close()
		got, _ := io.ReadAll(r)
		if status != 0 || err != nil || string(got) != "via-fd-3\n" {
			t.Errorf("status %d, err %v, fd 3 carried %q", status, err, got)
		}
	})
	t.Run("Started gets the program's pid", func(t *testing.T) {
		var pid int
		status, out, err := run(t, context.Background(), Options{Program: "sh", Args: []string{"-c", "echo $$"},
			Started: func(p int) error { pid = p; return nil }})
		if status != 0 || err != nil || out != strconv.Itoa(pid)+"\n" {
			t.Errorf("status %d, err %v: the program says its pid is %q, Started got %d", status, err, out, pid)
		}
	})
	t.Run("Started failing kills the program", func(t *testing.T) {
		hookErr := errors.New("set-up failed")
		var pid int
		status, _, err := run(t, context.Background(), Options{Program: "sleep", Args: []string{"60"},
			Started: func(p int) error { pid = p; return hookErr }})
		if status != ExitFailed || !errors.Is(err, hookErr) {
			t.Errorf("status %d, err %v; want %d and the hook's error", status, err, ExitFailed)
		}
		if err := syscall.Kill(pid, 0); !errors.Is(err, syscall.ESRCH) {
			t.Errorf("the program (pid %d) is still there after Run returned: %v", pid, err)
		}
	})
	t.Run("a done context kills the program", func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		status, _, err := run(t, ctx, Options{Program: "sleep", Args: []string{"60"},
			Started: func(int) error { cancel(); return nil }})
		if status != 128+int(syscall.SIGKILL) || !errors.Is(err, context.Canceled) {
			t.Errorf("status %d, err %v; want %d and context.Canceled", status, err, 128+int(syscall.SIGKILL))
		}
	})
}

// TestRunForwardsSignals sends signals to this process, which Run has registered for
// before starting the program: they reach Run, not the Go runtime's default action.
func TestRunForwardsSignals(t *testing.T) {
	for _, tc := range []struct {
		sig  syscall.Signal
		name string
	}{
		{syscall.SIGUSR1, "USR1"},
		{syscall.SIGTERM, "TERM"},
		// Not a terminal here, so a terminal's signal is passed on too.
		{syscall.SIGINT, "INT"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var out syncbuf.Buffer
			done := make(chan int, 1)
			go func() {
				status, _ := Run(context.Background(), Options{Program: "sh",
					Args:  []string{"-c", `trap 'exit 7' ` + tc.name + `; echo ready; while :; do sleep 0.01; done`},
					Env:   []string{"PATH=" + os.Getenv("PATH")},
					Stdin: strings.NewReader(""), Stdout: &out, Stderr: &out})
				done <- status
			}()
			deadline := time.Now().Add(20 * time.Second)
			for !strings.Contains(out.String(), "ready") {
				if time.Now().After(deadline) {
					t.Fatalf("the program never became ready; output %q", out.String())
				}
				time.Sleep(5 * time.Millisecond)
			}
			syscall.Kill(os.Getpid(), tc.sig)
			select {
			case status := <-done:
				if status != 7 {
					t.Fatalf("status %d, want 7 (the program's %s trap)", status, tc.name)
				}
			case <-time.After(20 * time.Second):
				t.Fatalf("the program did not exit after SIG%s was passed on", tc.name)
			}
		})
	}
}
