package completions

import (
	"github.com/tessel/tessel-proxy/deviceenv"
	"github.com/tessel/tessel-proxy/proxyconfig"
)

// deviceCandidates lists the registered devices (with their addresses) and the built-in local
// one. A missing or unreadable registry offers local alone: completion must never print an
// error into the user's command line.
func deviceCandidates(env proxyconfig.Lookup) []candidate {
	var out []candidate
	if path, err := deviceenv.DefaultRegistryPath(env); err == nil {
		if reg, err := deviceenv.LoadRegistry(path); err == nil {
			for _, name := range reg.Names() {
				out = append(out, candidate{word: name, help: reg.Devices[name].Address})
			}
		}
	}
	return append(out, candidate{word: deviceenv.LocalName, help: "this machine"})
}
