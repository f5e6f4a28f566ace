//go:build linux

package e2e

import (
	"net/http"
	"net/http/httptest"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestGitCloneThroughTunnel clones a repository over HTTP (git's "dumb" protocol, served as
// static files) with git started through `run`.
func TestGitCloneThroughTunnel(t *testing.T) {
	needTools(t, "git")
	srv := startDevServer(t)

	root := t.TempDir()
	work := filepath.Join(root, "work")
	bare := filepath.Join(root, "srv", "repo.git")
	git := func(dir string, args ...string) {
		t.Helper()
		cmd := exec.Command("git", args...)
		cmd.Dir = dir
		cmd.Env = append(baseEnv(t), "GIT_AUTHOR_NAME=t", "GIT_AUTHOR_EMAIL=t@example.net",
			"GIT_COMMITTER_NAME=t", "GIT_COMMITTER_EMAIL=t@example.net")
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("git %s: %v\n%s", strings.Join(args, " "), err, out)
		}
	}
	git(root, "init", "-q", "-b", "main", work)
	if err := writeFile(filepath.Join(work, "README"), greeting); err != nil {
		t.Fatal(err)
	}
	git(work, "add", "README")
	git(work, "commit", "-q", "-m", "first")
	git(root, "clone", "-q", "--bare", work, bare)
	git(bare, "update-server-info")

	target := httptest.NewServer(http.FileServer(http.Dir(filepath.Join(root, "srv"))))
	t.Cleanup(target.Close)

	clone := filepath.Join(root, "clone")
	r := runTool(t, srv.clientEnv(t), "run", "--", "git", "clone", "-q", target.URL+"/repo.git", clone)
	if r.code != 0 {
		t.Fatalf("git clone through run: exit %d\n%s", r.code, r.stderr)
	}
	if got := readFile(t, filepath.Join(clone, "README")); got != greeting {
		t.Fatalf("cloned README = %q", got)
	}
	waitFor(t, func() bool { return strings.Contains(srv.stderr.String(), ":"+targetPort(target)) },
		"serve's log names the git server's port; log:\n%s", srv.stderr)
}
