package commands

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tessel/tessel-proxy/deviceenv"
	"github.com/tessel/tessel-proxy/internal/testcert"
	"github.com/tessel/tessel-proxy/internal/testsshd"
)

// envFixture is a user with a temporary HOME and config directory.
type envFixture struct {
	t       *testing.T
	home    string
	envFile string // the local device's env file
	vars    map[string]string
}

func newEnvFixture(t *testing.T) *envFixture {
	home := t.TempDir()
	return &envFixture{t: t, home: home,
		envFile: filepath.Join(home, ".config", "tessel-proxy", "env"),
		vars:    map[string]string{"HOME": home, "PATH": os.Getenv("PATH")}}
}

// run drives Main with stdin and returns stdout, stderr and the exit status.
func (f *envFixture) run(stdin string, args ...string) (string, string, int) {
	var out, errb bytes.Buffer
	io := IO{In: strings.NewReader(stdin), Out: &out, Err: &errb, LookupEnv: func(k string) (string, bool) {
		v, ok := f.vars[k]
		return v, ok
	}}
	code := Main(io, append([]string{"tessel-proxy"}, args...))
	return out.String(), errb.String(), code
}

// ok runs a command that must succeed and returns its stdout.
func (f *envFixture) ok(stdin string, args ...string) string {
	f.t.Helper()
	out, errOut, code := f.run(stdin, args...)
	if code != 0 {
		f.t.Fatalf("%q exited %d: %s", args, code, errOut)
	}
	return out
}

// fails runs a command that must exit with code and mention want on stderr.
func (f *envFixture) fails(code int, want string, args ...string) {
	f.t.Helper()
	_, errOut, got := f.run("", args...)
	if got != code || !strings.Contains(errOut, want) {
		f.t.Errorf("%q exited %d with %q; want %d and a message containing %q", args, got, errOut, code, want)
	}
}

func envTestCert(t *testing.T) string { return string(testcert.New(t).PEM) }

// envRoundTrip exercises set/get/list/unset against whatever device args select.
func envRoundTrip(t *testing.T, f *envFixture, dev []string, fileOnDevice string) {
	set := func(stdin string, args ...string) {
		t.Helper()
		f.ok(stdin, append(append([]string{"env", "set"}, dev...), args...)...)
	}
	get := func(key string) string {
		t.Helper()
		return f.ok("", append(append([]string{"env", "get"}, dev...), key)...)
	}
	pemText := envTestCert(t)
	valueFile := filepath.Join(t.TempDir(), "value with space.txt")
	os.WriteFile(valueFile, []byte("from a file\n"), 0o600)

	set("", "PROXY_HOST=proxy.example.net", "PROXY_PORT=8443", "ZIP=007", `ODD=it's "$HOME" \ # x`)
	set(pemText, "PROXY_CERT", "-")
	set("", "FROMFILE=@"+valueFile, "EMPTY=")
	set("s3cret-token\n", "PROXY_TOKEN", "-")
	set("", "PROXY_VIA=http://alice:s3cret-pw@proxy.corp:3128")

	for key, want := range map[string]string{
		"PROXY_HOST": "proxy.example.net\n", "ZIP": "007\n", "ODD": `it's "$HOME" \ # x` + "\n",
		"PROXY_CERT": pemText, "FROMFILE": "from a file\n", "EMPTY": "\n", "PROXY_TOKEN": "s3cret-token\n",
	} {
		if got := get(key); got != want {
			t.Errorf("env get %s = %q, want %q", key, got, want)
		}
	}

	// The file on the device is a dotenv file that reads back byte for byte, mode 0600.
	onDisk, err := deviceenv.ReadEnvFile(fileOnDevice)
	if err != nil {
		t.Fatal(err)
	}
	// A one-line value from a file or stdin loses the newline echo adds; PEM keeps its bytes.
	if onDisk["PROXY_CERT"] != pemText || onDisk["ZIP"] != "007" || onDisk["PROXY_TOKEN"] != "s3cret-token" ||
		onDisk["FROMFILE"] != "from a file" {
		t.Errorf("the device's env file holds %q", onDisk)
	}
	if fi, err := os.Stat(fileOnDevice); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("env file mode: %v %v, want 0600", fi, err)
	}

	list := f.ok("", append([]string{"env", "list"}, dev...)...)
	if strings.Contains(list, "s3cret") || !strings.Contains(list, "PROXY_TOKEN=********") ||
		!strings.Contains(list, "PROXY_VIA=http://alice:********@proxy.corp:3128\n") {
		t.Errorf("env list must mask the token:\n%s", list)
	}
	if !strings.Contains(list, "PROXY_HOST=proxy.example.net\n") || !strings.Contains(list, "ZIP=007\n") {
		t.Errorf("env list:\n%s", list)
	}
	if listed, err := deviceenv.ParseEnv([]byte(list)); err != nil || listed["ODD"] != onDisk["ODD"] || listed["PROXY_CERT"] != pemText {
		t.Errorf("env list output is not dotenv that reads back (%v):\n%s", err, list)
	}
	if shown := f.ok("", append([]string{"env", "list", "--show-secrets"}, dev...)...); !strings.Contains(shown, "PROXY_TOKEN=s3cret-token") {
		t.Errorf("--show-secrets:\n%s", shown)
	}

	var asJSON map[string]string
	if err := json.Unmarshal([]byte(f.ok("", append([]string{"env", "list", "--json"}, dev...)...)), &asJSON); err != nil {
		t.Fatal(err)
	}
	if asJSON["PROXY_TOKEN"] != "********" || asJSON["PROXY_CERT"] != pemText || asJSON["ZIP"] != "007" ||
		asJSON["PROXY_VIA"] != "http://alice:********@proxy.corp:3128" {
		t.Errorf("--json: %q", asJSON)
	}

	// --shell output, eval'd by a real sh, gives back every value; the token only when asked.
	shell := f.ok("", append([]string{"env", "list", "--shell", "--show-secrets"}, dev...)...)
	out, err := exec.Command("sh", "-c", shell+`printf '%s|%s|%s' "$ODD" "$ZIP" "$PROXY_TOKEN"`).Output()
	if err != nil || string(out) != onDisk["ODD"]+"|007|s3cret-token" {
		t.Errorf("eval of --shell output: %q, %v\n%s", out, err, shell)
	}
	if masked := f.ok("", append([]string{"env", "list", "--shell"}, dev...)...); strings.Contains(masked, "s3cret") || strings.Contains(masked, "export PROXY_TOKEN") {
		t.Errorf("--shell without --show-secrets exports the token:\n%s", masked)
	}

	f.ok("", append(append([]string{"env", "unset"}, dev...), "ZIP", "ODD")...)
	_, errOut, code := f.run("", append(append([]string{"env", "get"}, dev...), "ZIP")...)
	if code != 1 || !strings.Contains(errOut, "ZIP is not set") {
		t.Errorf("env get of an unset key: exit %d, %q; want 1 and a message", code, errOut)
	}
	if get("PROXY_HOST") != "proxy.example.net\n" {
		t.Error("unset removed more than asked")
	}
}

func TestEnvLocalRoundTrip(t *testing.T) {
	f := newEnvFixture(t)
	envRoundTrip(t, f, nil, f.envFile)
}

func TestEnvXDGConfigHome(t *testing.T) {
	f := newEnvFixture(t)
	xdg := t.TempDir()
	f.vars["XDG_CONFIG_HOME"] = xdg
	f.ok("", "env", "set", "PROXY_PORT=1234")
	if m, _ := deviceenv.ReadEnvFile(filepath.Join(xdg, "tessel-proxy", "env")); m["PROXY_PORT"] != "1234" {
		t.Errorf("env set ignored XDG_CONFIG_HOME: %q", m)
	}
}

func TestEnvSetValidationLeavesFileByteIdentical(t *testing.T) {
	f := newEnvFixture(t)
	f.ok("", "env", "set", "PROXY_HOST=proxy.example.net", "PROXY_PORT=8443")
	before, err := os.ReadFile(f.envFile)
	if err != nil {
		t.Fatal(err)
	}
	badPEM := filepath.Join(t.TempDir(), "bad.pem")
	os.WriteFile(badPEM, []byte("not a certificate"), 0o600)
	tests := []struct {
		args []string
		want string
	}{
		{[]string{"PROXY_HOST=other.example", "PROXY_PORT=0"}, "PROXY_PORT"},
		{[]string{"PROXY_PORT=65536"}, "1 to 65535"},
		{[]string{"PROXY_TRUSTED=maybe"}, "PROXY_TRUSTED"},
		{[]string{"PROXY_IDLE=-1"}, "PROXY_IDLE"},
		{[]string{"PROXY_LOCAL=10.0.0.0/33"}, "PROXY_LOCAL"},
		{[]string{"PROXY_CERT=/nonexistent/ca.pem"}, "does not exist"},
		{[]string{"PROXY_CERT=@" + badPEM}, "no PEM certificate"},
		{[]string{"PROXY_CERT=-----BEGIN CERTIFICATE-----\nxx\n-----END CERTIFICATE-----"}, "PROXY_CERT"},
		{[]string{"OK=1", "BAD-KEY=1"}, "not a variable name"},
		{[]string{"NOEQUALS"}, "KEY=VALUE"},
		{[]string{"A=@/nonexistent/file"}, "no such file"},
		{[]string{}, "nothing to set"},
	}
	for _, tt := range tests {
		f.fails(2, tt.want, append([]string{"env", "set"}, tt.args...)...)
		after, _ := os.ReadFile(f.envFile)
		if !bytes.Equal(before, after) {
			t.Fatalf("env set %q changed the file although it failed", tt.args)
		}
	}
	// A token is never echoed in an error.
	_, errOut, code := f.run("tok-line-1\ntok-line-2\n", "env", "set", "PROXY_TOKEN", "-")
	if code != 2 || strings.Contains(errOut, "tok-line") {
		t.Errorf("malformed token: exit %d, %q", code, errOut)
	}
}

func TestEnvSetNearMissWarning(t *testing.T) {
	f := newEnvFixture(t)
	_, errOut, code := f.run("", "env", "set", "PROXY_PRT=8443", "proxy_host=x", "MY_OWN=1")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	if !strings.Contains(errOut, "PROXY_PRT") || !strings.Contains(errOut, "did you mean PROXY_PORT") ||
		!strings.Contains(errOut, "did you mean PROXY_HOST") || strings.Contains(errOut, "MY_OWN is not") {
		t.Errorf("warnings: %q", errOut)
	}
	if m, _ := deviceenv.ReadEnvFile(f.envFile); m["PROXY_PRT"] != "8443" || m["MY_OWN"] != "1" {
		t.Errorf("unknown keys must still be stored: %q", m)
	}
}

func TestEnvSetFromFileAndLogin(t *testing.T) {
	f := newEnvFixture(t)
	src := filepath.Join(t.TempDir(), "proxy.env")
	os.WriteFile(src, []byte("# mine\nPROXY_HOST=from.file\nPROXY_PORT=\"8443\"\n"), 0o600)
	f.ok("", "env", "set", "--from-file", src, "PROXY_PORT=9000")
	m, _ := deviceenv.ReadEnvFile(f.envFile)
	if m["PROXY_HOST"] != "from.file" || m["PROXY_PORT"] != "9000" {
		t.Errorf("--from-file with an argument that overrides it: %q", m)
	}
	// In a dotenv file PROXY_CERT may be a path, checked like an argument.
	certFile := filepath.Join(t.TempDir(), "ca.pem")
	os.WriteFile(certFile, []byte(envTestCert(t)), 0o600)
	os.WriteFile(src, []byte("PROXY_CERT="+certFile+"\n"), 0o600)
	f.ok("", "env", "set", "--from-file", src)
	if m, _ := deviceenv.ReadEnvFile(f.envFile); m["PROXY_CERT"] != certFile {
		t.Errorf("PROXY_CERT path from --from-file: %q", m["PROXY_CERT"])
	}
	os.WriteFile(src, []byte("PROXY_PORT=nope\n"), 0o600)
	f.fails(2, "PROXY_PORT", "env", "set", "--from-file", src)

	// The token in use comes from the environment here (it takes precedence over login).
	f.vars["PROXY_TOKEN"] = "env-token-123"
	_, errOut, code := f.run("", "env", "set", "--from-login")
	if code != 0 {
		t.Fatalf("--from-login: exit %d: %s", code, errOut)
	}
	if m, _ := deviceenv.ReadEnvFile(f.envFile); m["PROXY_TOKEN"] != "env-token-123" {
		t.Errorf("--from-login stored %q", m["PROXY_TOKEN"])
	}
	if strings.Contains(errOut, "env-token-123") {
		t.Errorf("the token was printed: %q", errOut)
	}
}

func TestEnvParallelLocal(t *testing.T) {
	f := newEnvFixture(t)
	envParallelSets(t, f, nil, f.envFile)
}

// envParallelSets runs 16 `env set` processes at once, each setting a different key: every
// one must exit 0 and every key must land. (Processes, as a user's would be; urfave/cli's
// global help flag also makes in-process Main calls unsafe to run concurrently.)
func envParallelSets(t *testing.T, f *envFixture, dev []string, fileOnDevice string) {
	const n = 16
	var wg sync.WaitGroup
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			args := append(append([]string{"env", "set"}, dev...), fmt.Sprintf("PAR_%02d=%d", i, i))
			if out, code := f.runProcess(args...); code != 0 {
				t.Errorf("parallel set %d: exit %d: %s", i, code, out)
			}
		}()
	}
	wg.Wait()
	m, err := deviceenv.ReadEnvFile(fileOnDevice)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < n; i++ {
		if m[fmt.Sprintf("PAR_%02d", i)] != fmt.Sprint(i) {
			t.Errorf("PAR_%02d was lost; the file has %q", i, m)
		}
	}
}

// runProcess runs tessel-proxy ARGS as a process of its own (this test binary, through
// TestMain) with the fixture's environment, and returns its output and exit status.
func (f *envFixture) runProcess(args ...string) (string, int) {
	encoded, _ := json.Marshal(args)
	cmd := exec.Command(os.Args[0])
	env := []string{mainArgsVar + "=" + string(encoded)}
	for k, v := range f.vars {
		env = append(env, k+"="+v)
	}
	cmd.Env = env
	out, err := cmd.CombinedOutput()
	if err != nil && cmd.ProcessState == nil {
		return err.Error(), -1
	}
	return string(out), cmd.ProcessState.ExitCode()
}

func TestEnvOverSSH(t *testing.T) {
	for _, busybox := range []bool{false, true} {
		t.Run(map[bool]string{false: "sh", true: "busybox"}[busybox], func(t *testing.T) {
			srv := testsshd.Start(t, testsshd.Options{BusyBox: busybox})
			f := newEnvFixture(t)
			f.vars["TESSEL_PROXY_SSH_COMMAND"] = srv.SSHCommand
			remote := filepath.Join(t.TempDir(), "remote dir", "tessel env")
			f.ok("", "device", "add", "pi", srv.Address(strings.ReplaceAll(remote, " ", "%20")))

			envRoundTrip(t, f, []string{"--device", "pi"}, remote)
			if !busybox { // deviceenv's tests run the parallel case on BusyBox's mkdir lock
				envParallelSets(t, f, []string{"--device", "pi"}, remote)
			}

			// A certificate path names a file on the device: stored unread. Locally the same
			// path is refused, because this machine would read it.
			f.ok("", "env", "set", "--device", "pi", "PROXY_CERT=/etc/tessel-proxy/ca.pem")
			if m, _ := deviceenv.ReadEnvFile(remote); m["PROXY_CERT"] != "/etc/tessel-proxy/ca.pem" {
				t.Errorf("remote PROXY_CERT path: %q", m["PROXY_CERT"])
			}
			f.fails(2, "does not exist", "env", "set", "PROXY_CERT=/etc/tessel-proxy/ca.pem")

			// Validation failures leave the remote file byte-identical too.
			before, _ := os.ReadFile(remote)
			f.fails(2, "PROXY_PORT", "env", "set", "--device", "pi", "A=1", "PROXY_PORT=99999")
			if after, _ := os.ReadFile(remote); !bytes.Equal(before, after) {
				t.Error("a rejected env set changed the remote file")
			}
			// Nothing of the local device was touched.
			if _, err := os.Stat(f.envFile); err == nil {
				t.Error("env commands for a remote device wrote the local env file")
			}
		})
	}
}

func TestEnvDeviceSelection(t *testing.T) {
	srv := testsshd.Start(t, testsshd.Options{})
	f := newEnvFixture(t)
	f.vars["TESSEL_PROXY_SSH_COMMAND"] = srv.SSHCommand
	fileA := filepath.Join(t.TempDir(), "a.env")
	fileB := filepath.Join(t.TempDir(), "b.env")
	f.ok("", "device", "add", "a", srv.Address(fileA))
	f.ok("", "device", "add", "b", srv.Address(fileB))

	where := func() string {
		t.Helper()
		for name, path := range map[string]string{"a": fileA, "b": fileB, "local": f.envFile} {
			if m, _ := deviceenv.ReadEnvFile(path); m["WHERE"] != "" {
				os.Remove(path)
				return name
			}
		}
		return "nowhere"
	}
	f.ok("", "env", "set", "WHERE=1")
	if got := where(); got != "local" {
		t.Errorf("no device, no default: went to %s, want local", got)
	}
	f.ok("", "device", "default", "a")
	f.ok("", "env", "set", "WHERE=1")
	if got := where(); got != "a" {
		t.Errorf("default a: went to %s", got)
	}
	f.vars["TESSEL_DEVICE"] = "b"
	f.ok("", "env", "set", "WHERE=1")
	if got := where(); got != "b" {
		t.Errorf("TESSEL_DEVICE=b over default a: went to %s", got)
	}
	// --device wins, also when written after the arguments.
	f.ok("", "env", "set", "WHERE=1", "--device", "local")
	if got := where(); got != "local" {
		t.Errorf("--device local over TESSEL_DEVICE: went to %s", got)
	}
	f.vars["TESSEL_DEVICE"] = "nosuch"
	f.fails(2, `TESSEL_DEVICE: no device named "nosuch"`, "env", "list")
	delete(f.vars, "TESSEL_DEVICE")
	f.fails(2, `env get: "A B" is not a variable name`, "env", "get", "A B")
}

func TestEnvSSHErrorsNameTheDevice(t *testing.T) {
	srv := testsshd.Start(t, testsshd.Options{})
	f := newEnvFixture(t)
	f.vars["TESSEL_PROXY_SSH_COMMAND"] = srv.SSHCommand
	f.ok("", "device", "add", "gone", fmt.Sprintf("ssh://%s@127.0.0.1:1/tmp/env", srv.User))
	f.fails(1, "device gone", "env", "set", "--device", "gone", "A=1")
	f.fails(1, "Connection refused", "env", "list", "--device", "gone")
}

// unsignedJWT is a token shaped like an OAuth access token that expires at exp. Nothing here
// verifies signatures: the expiry is read for the user's information only.
func unsignedJWT(sub string, exp time.Time) string {
	enc := func(v any) string {
		b, _ := json.Marshal(v)
		return base64.RawURLEncoding.EncodeToString(b)
	}
	return enc(map[string]string{"alg": "RS256", "typ": "JWT"}) + "." +
		enc(map[string]any{"sub": sub, "exp": exp.Unix()}) + ".c2ln"
}

// An OAuth access token lives an hour; on a device, where nothing renews it, it stops working
// soon after env set --from-login stores it. Say so, and refuse one that has expired already.
func TestEnvSetFromLoginShortLivedToken(t *testing.T) {
	f := newEnvFixture(t)
	exp := time.Now().Add(time.Hour).Truncate(time.Second)
	f.vars["PROXY_TOKEN"] = unsignedJWT("ann", exp)
	_, errOut, code := f.run("", "env", "set", "--from-login")
	if code != 0 {
		t.Fatalf("--from-login: exit %d: %s", code, errOut)
	}
	for _, want := range []string{"warning:", "expires at " + exp.UTC().Format(time.RFC3339), "long-lived API key", "login --with-token", "PROXY_TOKEN - < key.txt"} {
		if !strings.Contains(errOut, want) {
			t.Errorf("--from-login with a token that expires in an hour: stderr lacks %q:\n%s", want, errOut)
		}
	}
	if m, _ := deviceenv.ReadEnvFile(f.envFile); m["PROXY_TOKEN"] != f.vars["PROXY_TOKEN"] {
		t.Errorf("the token was not stored: %q", m["PROXY_TOKEN"])
	}

	// A key that lives for months, or says nothing about its expiry, is what a device needs.
	for _, token := range []string{unsignedJWT("ann", time.Now().Add(365*24*time.Hour)), "opaque-api-key"} {
		f.vars["PROXY_TOKEN"] = token
		if _, errOut, code := f.run("", "env", "set", "--from-login"); code != 0 || strings.Contains(errOut, "warning") {
			t.Errorf("--from-login with a long-lived key: exit %d: %s", code, errOut)
		}
	}

	f.vars["PROXY_TOKEN"] = unsignedJWT("ann", time.Now().Add(-time.Minute))
	before, _ := os.ReadFile(f.envFile)
	f.fails(1, "expired at", "env", "set", "--from-login")
	if after, _ := os.ReadFile(f.envFile); !bytes.Equal(before, after) {
		t.Error("an expired token was stored")
	}
}

// Secrets travel to a device on ssh's stdin, never on a command line that ps shows there or
// here, and never in a message.
func TestEnvSecretsStayOutOfArgv(t *testing.T) {
	srv := testsshd.Start(t, testsshd.Options{})
	f := newEnvFixture(t)
	dir := t.TempDir()
	argvLog := filepath.Join(dir, "argv")
	wrapper := filepath.Join(dir, "ssh-wrapper")
	if err := os.WriteFile(wrapper, []byte("#!/bin/sh\nprintf '%s\\n' \"$@\" >> '"+argvLog+"'\nexec \"$@\"\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	f.vars["TESSEL_PROXY_SSH_COMMAND"] = wrapper + " " + srv.SSHCommand
	remote := filepath.Join(t.TempDir(), "env")
	f.ok("", "device", "add", "pi", srv.Address(remote))

	const secret = "s3cret-value-never-in-argv"
	_, errOut, code := f.run(secret+"\n", "env", "set", "--device", "pi", "PROXY_TOKEN", "-")
	if code != 0 {
		t.Fatalf("env set: exit %d: %s", code, errOut)
	}
	f.vars["TM_API_KEY"] = secret + "-2"
	if _, errOut, code = f.run("", "env", "set", "--device", "pi", "--from-login"); code != 0 {
		t.Fatalf("env set --from-login: exit %d: %s", code, errOut)
	}
	if _, errOut, code = f.run("", "env", "list", "--device", "pi"); code != 0 || strings.Contains(errOut, secret) {
		t.Fatalf("env list: exit %d: %s", code, errOut)
	}
	if m, _ := deviceenv.ReadEnvFile(remote); m["PROXY_TOKEN"] != secret+"-2" {
		t.Fatalf("the device holds %q", m)
	}
	argv, err := os.ReadFile(argvLog)
	if err != nil || !strings.Contains(string(argv), "BatchMode=yes") {
		t.Fatalf("ssh was not run through the wrapper: %v\n%s", err, argv)
	}
	if strings.Contains(string(argv), secret) {
		t.Errorf("a secret is on ssh's command line:\n%s", argv)
	}
	if fi, err := os.Stat(remote); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("the device's env file after two rewrites: %v, %v; want mode 0600", fi.Mode(), err)
	}
}
