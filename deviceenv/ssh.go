package deviceenv

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os/exec"
	"strconv"
	"strings"
	"time"

	"github.com/tessel/tessel-proxy/proxyconfig"
)

// SSHCommandVar names the environment variable that replaces the ssh command line (split as
// a shell would, like GIT_SSH_COMMAND), e.g. "ssh -F ~/.ssh/devices_config".
const SSHCommandVar = "TESSEL_PROXY_SSH_COMMAND"

// remoteScript runs on the device under POSIX sh (BusyBox ash is enough: it needs only cat,
// wc, mkdir, mv, rm, sync and, when present, flock and mktemp). It reads its orders from
// stdin, never from argv, so that values and paths stay out of process listings:
//
//	line 1: read | write
//	line 2: path of the env file; empty = ${XDG_CONFIG_HOME:-$HOME/.config}/tessel-proxy/env,
//	        ~/x = x in the home directory
//
// read prints "TESSEL-PROXY-ENV-1 found" and the file, or "TESSEL-PROXY-ENV-1 missing".
// write takes the lock (flock on PATH.lock, else a PATH.lock.d directory), prints
// "TESSEL-PROXY-ENV-1 SIZE" (-1 when missing) and the file, then reads "SIZE\n" and the new
// content, which it writes to a temporary file and renames over the old one only when every
// byte arrived and the file is synced (sync FILE, else a plain sync where sync takes no file).
// The temporary file is created exclusively, so that a link planted at its name cannot
// redirect the write: by mktemp, else by noclobber (set -C) tries. It prints
// TESSEL-PROXY-ENV-DONE after the rename, and exits 3 without writing when the client closes
// stdin instead of sending content. The marker lines let the
// client skip anything a login script prints.
//
// The script holds no ' or \: it travels inside single quotes through the remote login
// shell, whatever that is (sh, bash, zsh and fish all keep such a string intact).
const remoteScript = `umask 077
IFS= read -r op || exit 3
IFS= read -r p || exit 3
case ${XDG_CONFIG_HOME-} in /*) c=$XDG_CONFIG_HOME ;; *) c=$HOME/.config ;; esac
case $p in
"") p=$c/tessel-proxy/env ;;
"~/"*) p=$HOME/${p#"~/"} ;;
esac
case $p in */*) d=${p%/*} ;; *) d=. ;; esac
if [ -z "$d" ]; then d=/; fi
if [ "$op" = read ]; then
  if [ -e "$p" ]; then echo "TESSEL-PROXY-ENV-1 found"; exec cat -- "$p"; fi
  echo "TESSEL-PROXY-ENV-1 missing"
  exit 0
fi
if [ "$op" != write ]; then echo "unknown operation $op" >&2; exit 2; fi
mkdir -p -- "$d" || exit 1
l=$p.lock
t=
m=
cleanup() {
  if [ -n "$t" ]; then rm -f -- "$t"; fi
  if [ -n "$m" ]; then rmdir -- "$m" 2>/dev/null; fi
  return 0
}
trap cleanup EXIT
trap "exit 1" HUP INT TERM PIPE
if command -v flock >/dev/null 2>&1; then
  exec 9>>"$l" || exit 1
  flock 9 || { echo "cannot lock $l" >&2; exit 1; }
else
  i=0
  until mkdir -- "$l.d" 2>/dev/null; do
    i=$((i+1))
    if [ "$i" -ge 600 ]; then
      echo "$p is locked by the directory $l.d for over a minute; remove it if no tessel-proxy is running there" >&2
      exit 1
    fi
    sleep 0.1 2>/dev/null || sleep 1
  done
  m=$l.d
fi
if [ -f "$p" ]; then n=$(($(wc -c < "$p"))) || exit 1; else n=-1; fi
echo "TESSEL-PROXY-ENV-1 $n"
if [ "$n" -ge 0 ]; then cat -- "$p" || exit 1; fi
IFS= read -r want || exit 3
case $want in ""|*[!0-9]*) exit 3 ;; esac
t=$(mktemp -- "$p.tmp.XXXXXXXX" 2>/dev/null) || {
  i=0
  until (set -C; : > "$p.tmp.$$.$i") 2>/dev/null; do
    i=$((i+1))
    if [ "$i" -ge 100 ]; then echo "cannot create a temporary file beside $p" >&2; exit 1; fi
  done
  t=$p.tmp.$$.$i
}
cat > "$t" || exit 1
got=$(($(wc -c < "$t")))
if [ "$got" -ne "$want" ]; then
  echo "the transfer ended after $got of $want bytes; $p is unchanged" >&2
  exit 1
fi
sync -- "$t" 2>/dev/null || sync
mv -f -- "$t" "$p" || exit 1
t=
echo TESSEL-PROXY-ENV-DONE
`

const (
	markerPrefix = "TESSEL-PROXY-ENV-1 "
	markerDone   = "TESSEL-PROXY-ENV-DONE"
	exitAborted  = 3
	maxEnvFile   = 1 << 20 // an env file larger than this is not ours
)

// sshStore is an env file on a device reached with the system ssh client.
type sshStore struct {
	name string
	addr Address
	argv []string // ssh command line, ending with the remote command

	// sendContent writes the new file to the remote script; tests replace it to cut a
	// transfer short.
	sendContent func(stdin io.WriteCloser, content []byte, cmd *exec.Cmd) error
}

func newSSHStore(dev Device, addr Address, env proxyconfig.Lookup) (*sshStore, error) {
	argv := []string{"ssh"}
	if env != nil {
		if c, ok := env(SSHCommandVar); ok && strings.TrimSpace(c) != "" {
			var err error
			if argv, err = splitCommandLine(c); err != nil {
				return nil, fmt.Errorf("%s: %w", SSHCommandVar, err)
			}
		}
	}
	// BatchMode: a password or host-key prompt would hang a command that has no terminal to
	// ask on; ssh fails with its own message instead.
	argv = append(argv, "-o", "BatchMode=yes")
	if dev.Identity != "" {
		argv = append(argv, "-i", dev.Identity)
	}
	for _, o := range dev.SSHOptions {
		if err := CheckSSHOption(o); err != nil {
			return nil, fmt.Errorf("device %s: %w", dev.Name, err)
		}
		argv = append(argv, "-o", o)
	}
	if addr.Port != 0 {
		argv = append(argv, "-p", strconv.Itoa(addr.Port))
	}
	dest := addr.Host
	if addr.User != "" {
		dest = addr.User + "@" + dest
	}
	argv = append(argv, "--", dest, "sh -c '"+remoteScript+"'")
	return &sshStore{name: dev.Name, addr: addr, argv: argv, sendContent: sendContent}, nil
}

func sendContent(stdin io.WriteCloser, content []byte, _ *exec.Cmd) error {
	if _, err := fmt.Fprintf(stdin, "%d\n", len(content)); err != nil {
		return err
	}
	if _, err := stdin.Write(content); err != nil {
		return err
	}
	return stdin.Close()
}

func (s *sshStore) Remote() bool { return true }

func (s *sshStore) String() string {
	if s.name == s.addr.String() {
		return s.name
	}
	return s.name + " (" + s.addr.String() + ")"
}

// session is one run of remoteScript.
type session struct {
	s      *sshStore
	cmd    *exec.Cmd
	stdin  io.WriteCloser
	stdout *bufio.Reader
	stderr *limitedBuffer

	waited  bool
	waitErr error
}

func (s *sshStore) start(ctx context.Context, op string) (*session, error) {
	cmd := exec.CommandContext(ctx, s.argv[0], s.argv[1:]...)
	// ssh may leave a ProxyCommand or ControlMaster holding the pipes; do not wait forever.
	cmd.WaitDelay = 5 * time.Second
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return nil, err
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	sess := &session{s: s, cmd: cmd, stdin: stdin, stdout: bufio.NewReader(stdout), stderr: &limitedBuffer{max: 64 << 10}}
	cmd.Stderr = sess.stderr
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("device %s: start %s: %w", s, s.argv[0], err)
	}
	// The orders are small; the pipe buffer takes them without waiting for the remote side.
	if _, err := fmt.Fprintf(stdin, "%s\n%s\n", op, s.addr.Path); err != nil {
		return nil, sess.fail(err)
	}
	return sess, nil
}

// marker skips what a login script may print and returns the rest of the marker line.
func (sess *session) marker() (string, error) {
	for i := 0; i < 1000; i++ {
		line, err := sess.stdout.ReadString('\n')
		if rest, ok := strings.CutPrefix(line, markerPrefix); ok && err == nil {
			return strings.TrimSuffix(rest, "\n"), nil
		}
		if err != nil {
			return "", sess.fail(errors.New("the remote side ended before answering"))
		}
	}
	return "", sess.fail(errors.New("no answer from the remote script"))
}

// wait waits for ssh once and remembers the result.
func (sess *session) wait() error {
	if !sess.waited {
		sess.waited = true
		sess.waitErr = sess.cmd.Wait()
	}
	return sess.waitErr
}

// fail ends the session and returns an error naming the device, carrying ssh's own message
// (or the remote script's) when there is one.
func (sess *session) fail(cause error) error {
	sess.stdin.Close()
	waitErr := sess.wait()
	if msg := oneLine(sess.stderr.String()); msg != "" {
		return fmt.Errorf("device %s: %s", sess.s, msg)
	}
	if waitErr != nil && !errors.Is(cause, waitErr) {
		return fmt.Errorf("device %s: %v (%v)", sess.s, cause, waitErr)
	}
	return fmt.Errorf("device %s: %v", sess.s, cause)
}

// Read fetches the env file.
func (s *sshStore) Read(ctx context.Context) (map[string]string, error) {
	sess, err := s.start(ctx, "read")
	if err != nil {
		return nil, err
	}
	sess.stdin.Close()
	state, err := sess.marker()
	if err != nil {
		return nil, err
	}
	content, err := io.ReadAll(io.LimitReader(sess.stdout, maxEnvFile+1))
	if err != nil {
		return nil, sess.fail(err)
	}
	if err := sess.wait(); err != nil {
		return nil, sess.fail(err)
	}
	if state == "missing" {
		return map[string]string{}, nil
	}
	if len(content) > maxEnvFile {
		return nil, fmt.Errorf("device %s: the env file is larger than %d bytes", s, maxEnvFile)
	}
	vars, err := ParseEnv(content)
	if err != nil {
		return nil, fmt.Errorf("device %s: env file: %w", s, err)
	}
	return vars, nil
}

// Update runs the whole read-modify-write in one ssh session, under the remote lock.
func (s *sshStore) Update(ctx context.Context, change func(map[string]string) error) error {
	sess, err := s.start(ctx, "write")
	if err != nil {
		return err
	}
	state, err := sess.marker()
	if err != nil {
		return err
	}
	size, err := strconv.Atoi(state)
	if err != nil || size > maxEnvFile {
		return sess.fail(fmt.Errorf("unexpected answer %q from the remote script", state))
	}
	old := []byte{}
	if size >= 0 {
		old = make([]byte, size)
		if _, err := io.ReadFull(sess.stdout, old); err != nil {
			return sess.fail(err)
		}
	}
	abort := func(err error) error {
		sess.stdin.Close()
		if werr := sess.wait(); werr != nil {
			var ee *exec.ExitError
			if !errors.As(werr, &ee) || ee.ExitCode() != exitAborted {
				return sess.fail(werr)
			}
		}
		return err
	}
	vars, err := ParseEnv(old)
	if err != nil {
		return abort(fmt.Errorf("device %s: env file: %w", s, err))
	}
	if err := change(vars); err != nil {
		return abort(err)
	}
	text, err := FormatEnv(vars)
	if err != nil {
		return abort(err)
	}
	if err := s.sendContent(sess.stdin, text, sess.cmd); err != nil {
		return sess.fail(err)
	}
	for {
		line, err := sess.stdout.ReadString('\n')
		if strings.TrimSuffix(line, "\n") == markerDone {
			break
		}
		if err != nil {
			return sess.fail(errors.New("the remote side ended before confirming the write"))
		}
	}
	if err := sess.wait(); err != nil {
		// The rename happened; only the session's end went wrong.
		return fmt.Errorf("device %s: the env file was written, but ssh ended with %v", s, err)
	}
	return nil
}

// oneLine joins the last lines of ssh's stderr into one line for an error message.
func oneLine(s string) string {
	var lines []string
	for _, l := range strings.Split(strings.TrimSpace(s), "\n") {
		if l = strings.TrimSpace(l); l != "" {
			lines = append(lines, l)
		}
	}
	if len(lines) > 3 {
		lines = lines[len(lines)-3:]
	}
	return strings.Join(lines, "; ")
}

// limitedBuffer keeps the first max bytes written to it (ssh's stderr, for messages).
type limitedBuffer struct {
	buf bytes.Buffer
	max int
}

func (b *limitedBuffer) Write(p []byte) (int, error) {
	if room := b.max - b.buf.Len(); room > 0 {
		if len(p) > room {
			b.buf.Write(p[:room])
		} else {
			b.buf.Write(p)
		}
	}
	return len(p), nil
}

func (b *limitedBuffer) String() string { return b.buf.String() }

// splitCommandLine splits s into words as a POSIX shell would, without expanding anything:
// white space separates words; single quotes keep everything; double quotes keep everything
// but \" \\ \$ \` escapes; a backslash outside quotes keeps the next character.
func splitCommandLine(s string) ([]string, error) {
	var words []string
	var cur strings.Builder
	inWord := false
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == ' ' || c == '\t' || c == '\n':
			if inWord {
				words = append(words, cur.String())
				cur.Reset()
				inWord = false
			}
		case c == '\\':
			inWord = true
			if i+1 < len(s) {
				i++
				if s[i] != '\n' {
					cur.WriteByte(s[i])
				}
			}
		case c == '\'':
			inWord = true
			end := strings.IndexByte(s[i+1:], '\'')
			if end < 0 {
				return nil, errors.New("unterminated ' in command line")
			}
			cur.WriteString(s[i+1 : i+1+end])
			i += end + 1
		case c == '"':
			inWord = true
			i++
			for ; i < len(s) && s[i] != '"'; i++ {
				if s[i] == '\\' && i+1 < len(s) && strings.IndexByte("\"\\$`\n", s[i+1]) >= 0 {
					i++
					if s[i] == '\n' {
						continue
					}
				}
				cur.WriteByte(s[i])
			}
			if i >= len(s) {
				return nil, errors.New(`unterminated " in command line`)
			}
		default:
			inWord = true
			cur.WriteByte(c)
		}
	}
	if inWord {
		words = append(words, cur.String())
	}
	if len(words) == 0 {
		return nil, errors.New("empty command line")
	}
	return words, nil
}
