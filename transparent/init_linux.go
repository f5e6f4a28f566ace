package transparent

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strconv"

	"golang.org/x/sys/unix"
)

// Init is the namespace's first process (tessel-proxy re-executed with InitArg first): it
// sets up the network and resolv.conf, hands the TUN device to the Runner, waits for its
// go-ahead and executes the program in its own place. It returns only on failure, with
// the exit status to end with. args are what follows InitArg.
func Init(args []string) int {
	if len(args) < 5 {
		fmt.Fprintln(os.Stderr, "tessel-proxy: "+InitArg+" is started by `tessel-proxy run --transparent`")
		return 125
	}
	fd, err1 := strconv.Atoi(args[0])
	mtu, err2 := strconv.Atoi(args[1])
	resolv, path, argv := args[2], args[3], args[4:]
	if err1 != nil || err2 != nil {
		fmt.Fprintln(os.Stderr, "tessel-proxy: "+InitArg+": bad arguments")
		return 125
	}
	sock := os.NewFile(uintptr(fd), "transparent-setup")
	unix.CloseOnExec(fd)

	report := func(r setupReport, tun int) int {
		b, _ := json.Marshal(r)
		var oob []byte
		if tun >= 0 {
			oob = unix.UnixRights(tun)
		}
		if err := unix.Sendmsg(fd, b, oob, nil, 0); err != nil {
			fmt.Fprintln(os.Stderr, "tessel-proxy: transparent mode: report to tessel-proxy:", err)
			return 125
		}
		return 0
	}
	tun, ipv6, err := setupNetwork(mtu)
	if err == nil {
		err = setupResolver(resolv)
	}
	if err != nil {
		var u *UnsupportedError
		switch {
		case errors.Is(err, unix.EPERM) && appArmorRestrictsUserNamespaces():
			u = appArmorError(err)
		case !errors.As(err, &u):
			u = &UnsupportedError{Why: err.Error()}
		}
		report(setupReport{Why: u.Why, Fix: u.Fix}, -1)
		return 125
	}
	if report(setupReport{IPv6: ipv6}, tun) != 0 {
		return 125
	}
	unix.Close(tun)
	// Wait for the stack to run on the far end of the TUN device. Nothing but end of file
	// comes instead when it could not start; tessel-proxy then reports why.
	var ok [1]byte
	if n, _ := sock.Read(ok[:]); n != 1 {
		return 125
	}
	sock.Close()
	dropCapabilities()
	err = unix.Exec(path, argv, os.Environ())
	fmt.Fprintf(os.Stderr, "tessel-proxy: run: %s: cannot execute: %v\n", argv[0], err)
	if errors.Is(err, unix.ENOENT) {
		return 127
	}
	return 126
}

// dropCapabilities clears the ambient and inheritable capabilities that the set-up needed,
// so that the program has what plain run would give it: none, unless it runs as root.
func dropCapabilities() {
	unix.Prctl(unix.PR_CAP_AMBIENT, unix.PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0)
	hdr := unix.CapUserHeader{Version: unix.LINUX_CAPABILITY_VERSION_3}
	var data [2]unix.CapUserData
	if unix.Capget(&hdr, &data[0]) == nil {
		data[0].Inheritable, data[1].Inheritable = 0, 0
		unix.Capset(&hdr, &data[0])
	}
}

// setupNetwork brings up loopback and a TUN device, tun0, with the namespace's addresses
// and its default routes. It returns the TUN device's descriptor and whether IPv6 is up.
func setupNetwork(mtu int) (tun int, ipv6 bool, err error) {
	if err := setLinkUp("lo", 0); err != nil {
		return -1, false, fmt.Errorf("bring up loopback: %w", err)
	}
	tun, err = unix.Open(tunDevice, unix.O_RDWR|unix.O_CLOEXEC, 0)
	if err != nil {
		if errors.Is(err, unix.EACCES) || errors.Is(err, unix.EPERM) {
			return -1, false, &UnsupportedError{Why: "cannot open " + tunDevice + ": " + errText(err),
				Fix: "make it usable by everyone, as most distributions ship it (sudo chmod 0666 " + tunDevice + "), or run as root"}
		}
		return -1, false, &UnsupportedError{Why: "cannot open " + tunDevice + ": " + errText(err),
			Fix: "load the TUN driver (sudo modprobe tun)"}
	}
	ifr, err := unix.NewIfreq("tun0")
	if err != nil {
		return -1, false, err
	}
	ifr.SetUint16(unix.IFF_TUN | unix.IFF_NO_PI)
	if err := unix.IoctlIfreq(tun, unix.TUNSETIFF, ifr); err != nil {
		unix.Close(tun)
		return -1, false, &UnsupportedError{Why: "cannot create a TUN device in the new network namespace: " + errText(err),
			Fix: "run as root, or where user namespaces come with network privileges"}
	}
	name := ifr.Name()
	if err := setLinkUp(name, mtu); err != nil {
		unix.Close(tun)
		return -1, false, fmt.Errorf("bring up %s: %w", name, err)
	}
	index, err := linkIndex(name)
	if err == nil {
		err = addAddress(index, inside4, 32)
	}
	if err == nil {
		err = addDefaultRoute(index, unix.AF_INET)
	}
	if err != nil {
		unix.Close(tun)
		return -1, false, fmt.Errorf("configure %s: %w", name, err)
	}
	// IPv6 is optional: a kernel with IPv6 disabled still gets an IPv4-only namespace.
	ipv6 = addAddress(index, inside6, 128) == nil && addDefaultRoute(index, unix.AF_INET6) == nil
	return tun, ipv6, nil
}

// resolverSockets are local sockets through which the C library resolves names without
// reading resolv.conf: the name service cache and systemd-resolved. Inside they are
// covered, so that lookups fall through to the namespace's DNS server.
var resolverSockets = []string{"/run/nscd/socket", "/var/run/nscd/socket", "/run/systemd/resolve/io.systemd.Resolve"}

// setupResolver mounts the namespace's resolv.conf over /etc/resolv.conf, privately.
func setupResolver(resolv string) error {
	if err := unix.Mount("", "/", "", unix.MS_REC|unix.MS_PRIVATE, ""); err != nil {
		return fmt.Errorf("make mounts private: %w", err)
	}
	if err := unix.Mount(resolv, "/etc/resolv.conf", "", unix.MS_BIND, ""); err != nil {
		return &UnsupportedError{Why: "cannot mount the namespace's resolver over /etc/resolv.conf: " + errText(err),
			Fix: "make /etc/resolv.conf a file (or a symbolic link to one that exists)"}
	}
	for _, s := range resolverSockets {
		if _, err := os.Lstat(s); err == nil {
			unix.Mount("/dev/null", s, "", unix.MS_BIND, "")
		}
	}
	return nil
}
