package proxyclient_test

import (
	"fmt"
	"net/http"
	"os"

	"github.com/tessel/tessel-proxy/deviceenv"
	"github.com/tessel/tessel-proxy/proxyclient"
)

// A program's own HTTP client, routed per PROXY_LOCAL: local hosts directly, the rest
// through the shared tunnel.
func ExampleDialer() {
	cfg, err := deviceenv.LoadLocal(os.LookupEnv)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return
	}
	d := proxyclient.NewDialer(cfg, nil)
	defer d.Close()

	client := &http.Client{Transport: &http.Transport{
		DialContext:    d.DialContext,
		DialTLSContext: d.DialTLSContext, // the proxy makes TLS connections only with PROXY_TRUSTED
	}}
	resp, err := client.Get("http://example.com/")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return
	}
	resp.Body.Close()
}
