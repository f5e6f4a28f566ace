package child

import (
	"strings"

	"github.com/tessel/tessel-proxy/proxyconfig"
)

// Proxy is where a program's proxy variables point.
type Proxy struct {
	SOCKS string // ALL_PROXY: a socks5h:// URL
	HTTP  string // HTTP_PROXY and HTTPS_PROXY: an http:// URL (HTTPS goes through CONNECT)
	// NoProxy lists the hosts the program connects to directly, for NO_PROXY. Empty
	// leaves NO_PROXY unset rather than the conventional "localhost,127.0.0.1": with
	// nothing local, loopback goes through the proxy too.
	NoProxy []string
}

// NoProxyEnv is a program's environment without proxy variables: parent without the
// tokens (PROXY_TOKEN, TM_API_KEY) and without any proxy settings (the variables ProxyEnv
// sets, and NODE_USE_ENV_PROXY).
func NoProxyEnv(parent []string) []string {
	drop := map[string]bool{"NODE_USE_ENV_PROXY": true}
	for _, v := range proxyVars {
		drop[v], drop[strings.ToLower(v)] = true, true
	}
	env := make([]string, 0, len(parent)+2*len(proxyVars)+1)
	for _, kv := range parent {
		k, _, _ := strings.Cut(kv, "=")
		if !drop[k] && !proxyconfig.IsSecret(k) {
			env = append(env, kv)
		}
	}
	return env
}

// proxyVars are the variables ProxyEnv sets (or clears), each in upper and lower case:
// tools disagree on which they read (curl ignores HTTP_PROXY, for one).
var proxyVars = []string{"ALL_PROXY", "HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY"}

// ProxyEnv is a program's environment: parent without the tokens (PROXY_TOKEN,
// TM_API_KEY) and without any proxy settings of its own, with p's in upper and lower
// case, and NODE_USE_ENV_PROXY=1 so that Node's fetch and http use them.
func ProxyEnv(parent []string, p Proxy) []string {
	env := NoProxyEnv(parent)
	set := map[string]string{"ALL_PROXY": p.SOCKS, "HTTP_PROXY": p.HTTP, "HTTPS_PROXY": p.HTTP}
	if len(p.NoProxy) > 0 {
		set["NO_PROXY"] = strings.Join(p.NoProxy, ",")
	}
	for _, k := range proxyVars {
		if v, ok := set[k]; ok {
			env = append(env, k+"="+v, strings.ToLower(k)+"="+v)
		}
	}
	return append(env, "NODE_USE_ENV_PROXY=1")
}
