package main

import (
	"os/exec"
	"strings"
	"testing"
)

// TestPackageLayering guards the direction of dependencies that the layout promises:
// proxyclient, the library a Go program imports for the tunneling dialer, runs no processes
// and knows nothing of devices; proxyclient and proxyserver never import each other.
func TestPackageLayering(t *testing.T) {
	const mod = "github.com/tessel/tessel-proxy/"
	for pkg, forbidden := range map[string][]string{
		"proxyclient": {"os/exec", mod + "deviceenv", "github.com/joho/godotenv", mod + "proxyserver", mod + "oauth", mod + "commands"},
		"proxyserver": {mod + "proxyclient", mod + "deviceenv", mod + "commands"},
		"proxyconfig": {"os/exec", mod + "deviceenv", "github.com/joho/godotenv"},
		"wire":        {mod + "proxyclient", mod + "proxyserver"},
	} {
		out, err := exec.Command("go", "list", "-deps", "./"+pkg).Output()
		if err != nil {
			t.Fatalf("go list -deps ./%s: %v", pkg, err)
		}
		deps := map[string]bool{}
		for _, d := range strings.Fields(string(out)) {
			deps[d] = true
		}
		for _, f := range forbidden {
			if deps[f] {
				t.Errorf("%s depends on %s", pkg, f)
			}
		}
	}
}
