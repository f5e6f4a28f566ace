package completions_test

import (
	"path/filepath"

	"github.com/tessel/tessel-proxy/deviceenv"
	"github.com/tessel/tessel-proxy/proxyconfig"
)

// writeRegistry registers devices (name to address) in the registry that HOME=home points at.
func writeRegistry(home string, devices map[string]string) error {
	path, err := deviceenv.DefaultRegistryPath(proxyconfig.MapLookup(map[string]string{
		"HOME": home, "XDG_CONFIG_HOME": filepath.Join(home, ".config")}))
	if err != nil {
		return err
	}
	return deviceenv.UpdateRegistry(path, func(r *deviceenv.Registry) error {
		for name, addr := range devices {
			r.Devices[name] = deviceenv.Device{Name: name, Address: addr}
		}
		return nil
	})
}
