//go:build unix

package child

import (
	"context"
	"errors"
	"os/exec"
	"strings"
	"testing"
)

func TestRunStartHook(t *testing.T) {
	t.Run("a hook that starts the command: the program runs, its status is kept", func(t *testing.T) {
		var started []string
		status, out, err := run(t, context.Background(), Options{
			Program: "sh", Args: []string{"-c", "echo inside; exit 4"},
			Start: func(cmd *exec.Cmd) error {
				started = append(started, strings.Join(cmd.Args, " "))
				return cmd.Start()
			},
		})
		if status != 4 || err != nil || out != "inside\n" {
			t.Errorf("status %d, err %v, output %q; want 4, nil, \"inside\\n\"", status, err, out)
		}
		if len(started) != 1 || started[0] != "sh -c echo inside; exit 4" {
			t.Errorf("the hook saw %q", started)
		}
	})
	t.Run("a hook that fails: ExitFailed with its error", func(t *testing.T) {
		hookErr := errors.New("transparent mode: no /dev/net/tun")
		status, out, err := run(t, context.Background(), Options{
			Program: "sh", Args: []string{"-c", "echo never"},
			Start: func(cmd *exec.Cmd) error { return hookErr },
		})
		if status != ExitFailed || !errors.Is(err, hookErr) || out != "" {
			t.Errorf("status %d, err %v, output %q; want %d and the hook's error", status, err, out, ExitFailed)
		}
	})
	t.Run("a program that does not exist is reported before the hook", func(t *testing.T) {
		status, _, err := run(t, context.Background(), Options{
			Program: "no-such-program-3f9a",
			Start:   func(cmd *exec.Cmd) error { t.Error("the hook ran"); return nil },
		})
		if status != ExitNotFound || err == nil {
			t.Errorf("status %d, err %v; want %d", status, err, ExitNotFound)
		}
	})
}
