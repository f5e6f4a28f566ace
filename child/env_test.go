package child

import (
	"slices"
	"testing"
)

func TestProxyEnv(t *testing.T) {
	front := Proxy{SOCKS: "socks5h://u:p@127.0.0.1:9", HTTP: "http://u:p@127.0.0.1:9"}
	frontVars := []string{
		"ALL_PROXY=socks5h://u:p@127.0.0.1:9", "all_proxy=socks5h://u:p@127.0.0.1:9",
		"HTTP_PROXY=http://u:p@127.0.0.1:9", "http_proxy=http://u:p@127.0.0.1:9",
		"HTTPS_PROXY=http://u:p@127.0.0.1:9", "https_proxy=http://u:p@127.0.0.1:9",
	}
	withLocal := front
	withLocal.NoProxy = []string{"10.0.0.0/8", "localhost", ".example.net"}

	cases := []struct {
		name   string
		parent []string
		proxy  Proxy
		want   []string
	}{
		{
			name:   "the rest passes through in order, values with = intact",
			parent: []string{"PATH=/bin", "EMPTY=", "Q=a=b"},
			proxy:  front,
			want:   append([]string{"PATH=/bin", "EMPTY=", "Q=a=b"}, append(frontVars, "NODE_USE_ENV_PROXY=1")...),
		},
		{
			name:   "tokens removed, look-alikes kept",
			parent: []string{"PROXY_TOKEN=secret", "TM_API_KEY=key", "PROXY_TOKEN_FILE=x", "proxy_token=lower"},
			proxy:  front,
			want:   append([]string{"PROXY_TOKEN_FILE=x", "proxy_token=lower"}, append(frontVars, "NODE_USE_ENV_PROXY=1")...),
		},
		{
			name: "the program's own proxy settings replaced, in both cases",
			parent: []string{"ALL_PROXY=socks5://other:1", "http_proxy=http://other:1", "HTTPS_PROXY=http://other:1",
				"no_proxy=inherited.example", "NO_PROXY=inherited.example", "NODE_USE_ENV_PROXY=0"},
			proxy: front,
			want:  append(frontVars, "NODE_USE_ENV_PROXY=1"),
		},
		{
			name:   "local hosts become NO_PROXY",
			parent: nil,
			proxy:  withLocal,
			want: append(frontVars, "NO_PROXY=10.0.0.0/8,localhost,.example.net",
				"no_proxy=10.0.0.0/8,localhost,.example.net", "NODE_USE_ENV_PROXY=1"),
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if got := ProxyEnv(tc.parent, tc.proxy); !slices.Equal(got, tc.want) {
				t.Errorf("ProxyEnv(%q)\n got %q\nwant %q", tc.parent, got, tc.want)
			}
		})
	}
}
