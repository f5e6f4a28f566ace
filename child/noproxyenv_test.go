package child

import (
	"slices"
	"testing"
)

func TestNoProxyEnv(t *testing.T) {
	parent := []string{"PATH=/bin", "PROXY_TOKEN=secret", "TM_API_KEY=secret", "HTTP_PROXY=http://corp:3128",
		"https_proxy=http://corp:3128", "ALL_PROXY=socks5://x", "no_proxy=corp", "NODE_USE_ENV_PROXY=1", "LANG=C"}
	got := NoProxyEnv(parent)
	if want := []string{"PATH=/bin", "LANG=C"}; !slices.Equal(got, want) {
		t.Errorf("NoProxyEnv = %q, want %q", got, want)
	}
}
