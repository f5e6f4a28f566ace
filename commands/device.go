package commands

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"text/tabwriter"

	"github.com/tessel/tessel-proxy/deviceenv"
	"github.com/urfave/cli/v2"
)

// DeviceAddOptions is what `device add` needs.
type DeviceAddOptions struct {
	IO         IO
	Name       string
	Address    string
	Identity   string
	SSHOptions []string
}

func deviceCommand(io IO) *cli.Command {
	return &cli.Command{
		Name:  "device",
		Usage: "name the machines whose env files `env` manages",
		Description: `A device is where a program will run with the tunnel: this machine ("local", built in)
or a Linux machine reached with the system ssh client, so ~/.ssh/config, agents and jump
hosts work. Its configuration is a dotenv file, by default
${XDG_CONFIG_HOME:-$HOME/.config}/tessel-proxy/env on that machine.

The device list lives in ${XDG_CONFIG_HOME:-$HOME/.config}/tessel-proxy/devices.json.
env commands use --device, else $TESSEL_DEVICE, else the default device, else local.
$TESSEL_PROXY_SSH_COMMAND replaces the ssh command line (split as a shell would, like
GIT_SSH_COMMAND), e.g. TESSEL_PROXY_SSH_COMMAND="ssh -F ~/.ssh/devices_config".

Examples:
   tessel-proxy device add pi ssh://pi@raspberrypi.local
   tessel-proxy device add gw ssh://root@192.0.2.10:2222/etc/tessel-proxy/env --identity ~/.ssh/gw_ed25519
   tessel-proxy device default pi
   tessel-proxy device list`,
		Subcommands: []*cli.Command{
			deviceAddCommand(io),
			deviceListCommand(io),
			deviceRemoveCommand(io),
			deviceDefaultCommand(io),
		},
	}
}

func deviceAddCommand(io IO) *cli.Command {
	return &cli.Command{
		Name:      "add",
		Usage:     "remember a device under a name",
		ArgsUsage: "NAME (local|ssh://[user@]host[:port][/path/to/env])",
		Description: `ADDRESS is "local" or ssh://[user@]host[:port][/path/to/env]. Without a path the env file
is ${XDG_CONFIG_HOME:-$HOME/.config}/tessel-proxy/env on the device; /~/file means file in
the remote home directory (as in git's ssh URLs); write a space as is or as %20. host may
be an alias from ~/.ssh/config. ssh runs in batch mode: use a key or an agent, not a
password. The device needs only a POSIX sh (BusyBox is enough).

Examples:
   tessel-proxy device add pi ssh://pi@raspberrypi.local
   tessel-proxy device add lab ssh://lab-gw/~/tessel/env --ssh-option ProxyJump=bastion
   tessel-proxy device add gw ssh://root@[2001:db8::7]:2222/etc/tessel-proxy/env --identity ~/.ssh/gw`,
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "identity", Usage: "private key file for ssh (ssh -i)", TakesFile: true},
			&cli.StringSliceFlag{Name: "ssh-option", Usage: "ssh option KEY=VALUE (ssh -o); repeat for more"},
		},
		Action: func(c *cli.Context) error {
			args, extra, err := splitInterspersed(c.Args().Slice(), []string{"identity", "ssh-option"}, nil)
			if err != nil {
				return usageError("device add: %v", err)
			}
			if len(args) != 2 {
				return usageError("device add: give NAME and ADDRESS, e.g. tessel-proxy device add pi ssh://pi@raspberrypi.local")
			}
			o := &DeviceAddOptions{IO: io, Name: args[0], Address: args[1],
				Identity: c.String("identity"), SSHOptions: c.StringSlice("ssh-option")}
			if v := extra.values["identity"]; len(v) > 0 {
				o.Identity = v[len(v)-1]
			}
			o.SSHOptions = append(o.SSHOptions, extra.values["ssh-option"]...)
			return runDeviceAdd(o)
		},
	}
}

func runDeviceAdd(o *DeviceAddOptions) error {
	if err := deviceenv.CheckDeviceName(o.Name); err != nil {
		return usageError("%v", err)
	}
	if o.Name == deviceenv.LocalName {
		return usageError("device add: %q is built in and always means this machine; pick another name", o.Name)
	}
	addr, err := deviceenv.ParseAddress(o.Address)
	if err != nil {
		return usageError("%v", err)
	}
	if addr.Local && (o.Identity != "" || len(o.SSHOptions) > 0) {
		return usageError("device add: --identity and --ssh-option apply to ssh:// devices only")
	}
	dev := deviceenv.Device{Name: o.Name, Address: addr.String(), SSHOptions: o.SSHOptions}
	for _, opt := range o.SSHOptions {
		if err := deviceenv.CheckSSHOption(opt); err != nil {
			return usageError("%v", err)
		}
	}
	if o.Identity != "" {
		if dev.Identity, err = absLocalPath(o.IO, o.Identity); err != nil {
			return usageError("--identity: %v", err)
		}
		if _, err := os.Stat(dev.Identity); err != nil {
			return usageError("--identity: %v", err)
		}
	}
	regPath, err := deviceenv.DefaultRegistryPath(o.IO.LookupEnv)
	if err != nil {
		return err
	}
	err = deviceenv.UpdateRegistry(regPath, func(r *deviceenv.Registry) error {
		if old, ok := r.Devices[o.Name]; ok {
			return fmt.Errorf("a device named %s already exists (%s); remove it first with `tessel-proxy device remove %s`", o.Name, old.Address, o.Name)
		}
		r.Devices[o.Name] = dev
		return nil
	})
	if err != nil {
		return err
	}
	fmt.Fprintf(o.IO.Err, "Added device %s (%s).\nUse it with --device %s, or make it the default with `tessel-proxy device default %s`.\n",
		o.Name, dev.Address, o.Name, o.Name)
	return nil
}

// absLocalPath makes a path given on this machine absolute, expanding a leading ~/ (a shell
// leaves ~ alone inside KEY=@~/file and --flag=~/file).
func absLocalPath(io IO, p string) (string, error) {
	if strings.HasPrefix(p, "~/") {
		home := io.Getenv("HOME")
		if home == "" {
			return "", fmt.Errorf("cannot expand %s: HOME is not set", p)
		}
		p = filepath.Join(home, p[2:])
	}
	return filepath.Abs(p)
}

// deviceEntry is one row of `device list --json`.
type deviceEntry struct {
	Name       string   `json:"name"`
	Address    string   `json:"address"`
	Default    bool     `json:"default"`
	Identity   string   `json:"identity,omitempty"`
	SSHOptions []string `json:"ssh_options,omitempty"`
}

func deviceListCommand(io IO) *cli.Command {
	return &cli.Command{
		Name:  "list",
		Usage: "show the devices and which one is the default",
		Description: `The built-in device "local" (this machine) is always listed.

Examples:
   tessel-proxy device list
   tessel-proxy device list --json | jq -r '.[] | select(.default) | .name'`,
		Flags: []cli.Flag{&cli.BoolFlag{Name: "json", Usage: "print a JSON array"}},
		Action: func(c *cli.Context) error {
			args, extra, err := splitInterspersed(c.Args().Slice(), nil, []string{"json"})
			if err != nil || len(args) != 0 {
				return usageError("device list takes no arguments")
			}
			reg, err := loadDeviceRegistry(io)
			if err != nil {
				return err
			}
			def := reg.DefaultName()
			entries := []deviceEntry{{Name: deviceenv.LocalName, Address: deviceenv.LocalName, Default: def == deviceenv.LocalName}}
			for _, name := range reg.Names() {
				d := reg.Devices[name]
				entries = append(entries, deviceEntry{Name: name, Address: d.Address, Default: def == name, Identity: d.Identity, SSHOptions: d.SSHOptions})
			}
			if c.Bool("json") || extra.bools["json"] {
				enc := json.NewEncoder(io.Out)
				enc.SetIndent("", "  ")
				return enc.Encode(entries)
			}
			tw := tabwriter.NewWriter(io.Out, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "NAME\tADDRESS\tDEFAULT")
			for _, e := range entries {
				mark := ""
				if e.Default {
					mark = "*"
				}
				fmt.Fprintf(tw, "%s\t%s\t%s\n", e.Name, e.Address, mark)
			}
			return tw.Flush()
		},
	}
}

func deviceRemoveCommand(io IO) *cli.Command {
	return &cli.Command{
		Name:      "remove",
		Usage:     "forget a device (its env file stays where it is)",
		ArgsUsage: "NAME",
		Description: `Removing the default device makes local the default again.

Example:
   tessel-proxy device remove pi`,
		Action: func(c *cli.Context) error {
			if c.NArg() != 1 {
				return usageError("device remove: give one NAME; see `tessel-proxy device list`")
			}
			name := c.Args().First()
			if name == deviceenv.LocalName {
				return usageError("device remove: local is built in and cannot be removed")
			}
			regPath, err := deviceenv.DefaultRegistryPath(io.LookupEnv)
			if err != nil {
				return err
			}
			wasDefault := false
			err = deviceenv.UpdateRegistry(regPath, func(r *deviceenv.Registry) error {
				if _, ok := r.Devices[name]; !ok {
					return usageError("no device named %q; see `tessel-proxy device list`", name)
				}
				delete(r.Devices, name)
				if r.Default == name {
					r.Default, wasDefault = "", true
				}
				return nil
			})
			if err != nil {
				return err
			}
			fmt.Fprintf(io.Err, "Removed device %s.\n", name)
			if wasDefault {
				fmt.Fprintln(io.Err, "It was the default; the default is now local.")
			}
			return nil
		},
	}
}

func deviceDefaultCommand(io IO) *cli.Command {
	return &cli.Command{
		Name:      "default",
		Usage:     "set the device env commands use without --device (or print it)",
		ArgsUsage: "[NAME]",
		Description: `Without NAME, prints the default device. $TESSEL_DEVICE and --device override it.

Examples:
   tessel-proxy device default pi
   tessel-proxy device default local     # back to this machine
   tessel-proxy device default`,
		Action: func(c *cli.Context) error {
			regPath, err := deviceenv.DefaultRegistryPath(io.LookupEnv)
			if err != nil {
				return err
			}
			switch c.NArg() {
			case 0:
				reg, err := deviceenv.LoadRegistry(regPath)
				if err != nil {
					return err
				}
				fmt.Fprintln(io.Out, reg.DefaultName())
				return nil
			case 1:
			default:
				return usageError("device default: give one NAME; see `tessel-proxy device list`")
			}
			name := c.Args().First()
			err = deviceenv.UpdateRegistry(regPath, func(r *deviceenv.Registry) error {
				if name == deviceenv.LocalName {
					r.Default = ""
					return nil
				}
				if _, ok := r.Devices[name]; !ok {
					return usageError("no device named %q; see `tessel-proxy device list`, or add it with `tessel-proxy device add %s ssh://user@host`", name, name)
				}
				r.Default = name
				return nil
			})
			if err != nil {
				return err
			}
			fmt.Fprintf(io.Err, "The default device is now %s.\n", name)
			return nil
		},
	}
}

func loadDeviceRegistry(io IO) (*deviceenv.Registry, error) {
	path, err := deviceenv.DefaultRegistryPath(io.LookupEnv)
	if err != nil {
		return nil, err
	}
	return deviceenv.LoadRegistry(path)
}

// openDeviceStore opens the env file of the device chosen by name (--device), else
// $TESSEL_DEVICE, else the default device, else local.
func openDeviceStore(io IO, name string) (deviceenv.Store, error) {
	from := ""
	if name == "" {
		if name = io.Getenv("TESSEL_DEVICE"); name != "" {
			from = "TESSEL_DEVICE: "
		}
	}
	reg, err := loadDeviceRegistry(io)
	if err != nil {
		return nil, err
	}
	dev, err := reg.Resolve(name)
	if err != nil {
		return nil, usageError("%s%v", from, err)
	}
	st, err := deviceenv.OpenStore(dev, io.LookupEnv)
	if err != nil {
		return nil, usageError("%v", err)
	}
	return st, nil
}

// interspersed holds flags written after positional arguments.
type interspersed struct {
	values map[string][]string
	bools  map[string]bool
}

// splitInterspersed picks out of args the flags that urfave/cli v2 leaves there when they
// follow a positional argument (`device add pi ssh://h --identity k`). valued flags take a
// value (--f v or --f=v), boolean ones do not. After "--" everything is positional; "-" is
// positional (it means stdin).
func splitInterspersed(args, valued, boolean []string) ([]string, interspersed, error) {
	out := interspersed{values: map[string][]string{}, bools: map[string]bool{}}
	var pos []string
	for i := 0; i < len(args); i++ {
		a := args[i]
		if a == "--" {
			return append(pos, args[i+1:]...), out, nil
		}
		if !strings.HasPrefix(a, "-") || a == "-" {
			pos = append(pos, a)
			continue
		}
		name, value, hasValue := strings.Cut(strings.TrimLeft(a, "-"), "=")
		switch {
		case slices.Contains(valued, name):
			if !hasValue {
				if i+1 >= len(args) {
					return nil, out, fmt.Errorf("flag --%s needs a value", name)
				}
				i++
				value = args[i]
			}
			out.values[name] = append(out.values[name], value)
		case slices.Contains(boolean, name) && !hasValue:
			out.bools[name] = true
		default:
			return nil, out, errors.New("flag provided but not defined: " + a)
		}
	}
	return pos, out, nil
}
