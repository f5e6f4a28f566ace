package transparent

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// tunDevice is the TUN clone device.
const tunDevice = "/dev/net/tun"

// setupTimeout bounds the namespace's set-up, from start to the TUN device in hand.
const setupTimeout = 15 * time.Second

// Runner is one transparent run: the namespaces of one program and the stack that carries
// its connections.
type Runner struct {
	cfg   Config
	root  bool
	stack *netStack
	tun   *os.File
}

// New checks that transparent mode can work here (an *UnsupportedError says why not) and
// returns a Runner for one program.
func New(cfg Config) (*Runner, error) {
	if cfg.Dial == nil || cfg.Local == nil {
		return nil, errors.New("transparent: Config needs Dial and Local")
	}
	r := &Runner{cfg: cfg.withDefaults(), root: os.Geteuid() == 0}
	if err := check(r.root); err != nil {
		return nil, err
	}
	return r, nil
}

// check finds the reasons known beforehand why the namespaces could not be made.
func check(root bool) error {
	st, err := os.Stat(tunDevice)
	if err != nil {
		return &UnsupportedError{Why: "no " + tunDevice + " (" + errText(err) + ")",
			Fix: "load the TUN driver (sudo modprobe tun); in a container, pass the device in (docker run --device /dev/net/tun)"}
	}
	if root {
		return nil
	}
	if unix.Access(tunDevice, unix.R_OK|unix.W_OK) != nil {
		return &UnsupportedError{
			Why: fmt.Sprintf("%s is mode %04o, and only root may open it", tunDevice, st.Mode().Perm()),
			Fix: "make it usable by everyone, as most distributions ship it (sudo chmod 0666 " + tunDevice + "), or run as root"}
	}
	if v := readSysctl("/proc/sys/user/max_user_namespaces"); v == "0" {
		return &UnsupportedError{Why: "user namespaces are disabled (user.max_user_namespaces = 0)",
			Fix: "enable them (sudo sysctl -w user.max_user_namespaces=15000), or run as root"}
	}
	if v := readSysctl("/proc/sys/kernel/unprivileged_userns_clone"); v == "0" {
		return &UnsupportedError{Why: "unprivileged user namespaces are disabled (kernel.unprivileged_userns_clone = 0)",
			Fix: "enable them (sudo sysctl -w kernel.unprivileged_userns_clone=1), or run as root"}
	}
	return nil
}

func readSysctl(path string) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(b))
}

// setupReport is the namespace's first message back: the TUN device (passed alongside) and
// whether IPv6 is up, or why the set-up failed.
type setupReport struct {
	IPv6 bool   `json:"ipv6,omitempty"`
	Why  string `json:"why,omitempty"`
	Fix  string `json:"fix,omitempty"`
}

// Start starts cmd (made by exec.Command, not yet started) in new network and mount
// namespaces, and in a new user namespace when not root, with every TCP connection it makes
// carried by Config.Dial. It returns once the program runs (then the caller waits for cmd
// as usual; its process is the program's own, so signals and exit status are the
// program's), or with an error and no process left running. A program that cannot be
// executed exits 126, or 127 when it does not exist, after saying so on its stderr.
func (r *Runner) Start(cmd *exec.Cmd) error {
	self, err := os.Executable()
	if err != nil {
		return fmt.Errorf("transparent mode: find this program's executable: %w", err)
	}
	resolv, err := writeResolvConf()
	if err != nil {
		return err
	}
	defer os.Remove(resolv)
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_SEQPACKET|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("transparent mode: socketpair: %w", err)
	}
	ours, theirs := os.NewFile(uintptr(fds[0]), "transparent-setup"), os.NewFile(uintptr(fds[1]), "transparent-setup")
	defer ours.Close()

	fd := 3 + len(cmd.ExtraFiles)
	cmd.ExtraFiles = append(cmd.ExtraFiles, theirs)
	cmd.Args = append([]string{self, InitArg, strconv.Itoa(fd), strconv.Itoa(r.cfg.MTU), resolv, cmd.Path}, cmd.Args...)
	cmd.Path = self
	if cmd.SysProcAttr == nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{}
	}
	attr := cmd.SysProcAttr
	attr.Cloneflags |= unix.CLONE_NEWNET | unix.CLONE_NEWNS
	if !r.root {
		// Only the caller's own uid and gid exist inside; the namespace's first process
		// keeps the capabilities it needs to set up the network across its exec (it drops
		// them before it executes the program).
		attr.Cloneflags |= unix.CLONE_NEWUSER
		attr.UidMappings = []syscall.SysProcIDMap{{ContainerID: os.Getuid(), HostID: os.Getuid(), Size: 1}}
		attr.GidMappings = []syscall.SysProcIDMap{{ContainerID: os.Getgid(), HostID: os.Getgid(), Size: 1}}
		attr.GidMappingsEnableSetgroups = false
		attr.AmbientCaps = []uintptr{unix.CAP_NET_ADMIN, unix.CAP_SYS_ADMIN}
	}
	err = cmd.Start()
	theirs.Close()
	if err != nil {
		return startError(err, r.root)
	}
	stop := func(err error) error {
		cmd.Process.Kill()
		cmd.Wait()
		return err
	}

	report, tun, err := receiveSetup(ours, setupTimeout)
	if err != nil {
		return stop(err)
	}
	if report.Why != "" {
		return stop(&UnsupportedError{Why: report.Why, Fix: report.Fix})
	}
	st, err := startStack(int(tun.Fd()), r.cfg, report.IPv6)
	if err != nil {
		tun.Close()
		return stop(fmt.Errorf("transparent mode: %w", err))
	}
	r.stack, r.tun = st, tun
	if _, err := ours.Write([]byte{1}); err != nil {
		return stop(fmt.Errorf("transparent mode: the namespace's first process ended during set-up: %w", err))
	}
	return nil
}

// Close stops the stack, closing every connection still open through it. Call it after the
// program ended.
func (r *Runner) Close() error {
	if r.stack != nil {
		r.stack.close()
		r.stack = nil
	}
	if r.tun != nil {
		r.tun.Close()
		r.tun = nil
	}
	return nil
}

// writeResolvConf writes the namespace's resolv.conf to a temporary file, for the namespace
// to mount over /etc/resolv.conf.
func writeResolvConf() (string, error) {
	f, err := os.CreateTemp("", "tessel-proxy-resolv-*.conf")
	if err != nil {
		return "", fmt.Errorf("transparent mode: %w", err)
	}
	_, err = fmt.Fprintf(f, "# tessel-proxy run --transparent: every name is resolved by tessel-proxy\nnameserver %s\noptions timeout:2 attempts:2\n", gateway4)
	if err == nil {
		err = f.Chmod(0o644)
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(f.Name())
		return "", fmt.Errorf("transparent mode: write resolv.conf: %w", err)
	}
	return f.Name(), nil
}

// receiveSetup reads the namespace's report and, with it, the TUN device.
func receiveSetup(sock *os.File, timeout time.Duration) (setupReport, *os.File, error) {
	var report setupReport
	fd := int(sock.Fd())
	pfd := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}}
	deadline := time.Now().Add(timeout)
	for {
		n, err := unix.Poll(pfd, int(time.Until(deadline)/time.Millisecond)+1)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return report, nil, fmt.Errorf("transparent mode: wait for the namespace: %w", err)
		}
		if n == 0 {
			return report, nil, fmt.Errorf("transparent mode: the namespace was not set up within %s", timeout)
		}
		break
	}
	buf := make([]byte, 4096)
	oob := make([]byte, unix.CmsgSpace(4))
	n, oobn, _, _, err := unix.Recvmsg(fd, buf, oob, unix.MSG_CMSG_CLOEXEC)
	if err != nil {
		return report, nil, fmt.Errorf("transparent mode: read the namespace's report: %w", err)
	}
	if n == 0 {
		return report, nil, errors.New("transparent mode: the namespace's first process ended during set-up")
	}
	if err := json.Unmarshal(buf[:n], &report); err != nil {
		return report, nil, fmt.Errorf("transparent mode: the namespace's report: %w", err)
	}
	if report.Why != "" {
		return report, nil, nil
	}
	msgs, err := unix.ParseSocketControlMessage(oob[:oobn])
	if err != nil || len(msgs) != 1 {
		return report, nil, errors.New("transparent mode: the namespace sent no TUN device")
	}
	fds, err := unix.ParseUnixRights(&msgs[0])
	if err != nil || len(fds) != 1 {
		return report, nil, errors.New("transparent mode: the namespace sent no TUN device")
	}
	return report, os.NewFile(uintptr(fds[0]), tunDevice), nil
}

// startError explains a failure to create the namespaces.
func startError(err error, root bool) error {
	switch {
	case errors.Is(err, unix.ENOSPC), errors.Is(err, unix.EUSERS):
		return &UnsupportedError{Why: "the kernel refused a new user namespace: the limit is reached (" + errText(err) + ")",
			Fix: "raise user.max_user_namespaces (sudo sysctl -w user.max_user_namespaces=15000), or run as root"}
	case errors.Is(err, unix.EINVAL):
		return &UnsupportedError{Why: "this kernel lacks user or network namespaces (" + errText(err) + ")",
			Fix: "use a kernel built with CONFIG_USER_NS and CONFIG_NET_NS"}
	case (errors.Is(err, unix.EPERM) || errors.Is(err, unix.EACCES)) && root:
		return &UnsupportedError{Why: "not allowed to create network namespaces (" + errText(err) + ")",
			Fix: "run where that is allowed (in a container: --cap-add SYS_ADMIN --cap-add NET_ADMIN)"}
	case errors.Is(err, unix.EPERM) && appArmorRestrictsUserNamespaces():
		return appArmorError(err)
	case errors.Is(err, unix.EPERM) || errors.Is(err, unix.EACCES):
		return &UnsupportedError{Why: "the kernel refused an unprivileged user namespace (" + errText(err) + ")",
			Fix: "allow unprivileged user namespaces (sysctl user.max_user_namespaces, kernel.unprivileged_userns_clone), or run as root"}
	}
	return fmt.Errorf("transparent mode: start the namespace: %w", err)
}

// appArmorRestrictsUserNamespaces reports whether AppArmor takes the capabilities of
// unprivileged user namespaces away (Ubuntu 24.04 and later, by default).
func appArmorRestrictsUserNamespaces() bool {
	return readSysctl("/proc/sys/kernel/apparmor_restrict_unprivileged_userns") == "1"
}

func appArmorError(err error) *UnsupportedError {
	return &UnsupportedError{Why: "AppArmor restricts unprivileged user namespaces (" + errText(err) + ")",
		Fix: "allow them (sudo sysctl -w kernel.apparmor_restrict_unprivileged_userns=0, or an AppArmor profile for tessel-proxy that allows userns), or run as root"}
}

// errText is an error's innermost text ("permission denied").
func errText(err error) string {
	var errno syscall.Errno
	if errors.As(err, &errno) {
		return errno.Error()
	}
	return err.Error()
}
