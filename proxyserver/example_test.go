package proxyserver_test

import (
	"context"
	"crypto/tls"
	"log"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"os/signal"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/tessel/tessel-proxy/proxyserver"
)

// A server with a certificate that is re-read on renewal, a tokens file, one private
// range opened to clients, and a graceful stop on Ctrl-C.
func Example() {
	logger := slog.New(slog.NewJSONHandler(os.Stderr, nil))
	cert, err := proxyserver.NewCertFile("/etc/tessel-proxy/cert.pem", "/etc/tessel-proxy/key.pem", logger)
	if err != nil {
		log.Fatal(err)
	}
	tokens, err := proxyserver.NewTokensFile("/etc/tessel-proxy/tokens", logger)
	if err != nil {
		log.Fatal(err)
	}
	srv, err := proxyserver.New(proxyserver.Config{
		TLS:           &tls.Config{GetCertificate: cert.GetCertificate},
		Authenticator: tokens,
		Policy:        &proxyserver.Policy{Allow: []netip.Prefix{netip.MustParsePrefix("10.20.0.0/16")}},
		Logger:        logger,
		Metrics:       prometheus.NewRegistry(),
	})
	if err != nil {
		log.Fatal(err)
	}
	ln, err := net.Listen("tcp", ":443")
	if err != nil {
		log.Fatal(err)
	}
	go func() {
		stop := make(chan os.Signal, 1)
		signal.Notify(stop, os.Interrupt)
		<-stop
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		srv.Shutdown(ctx)
	}()
	if err := srv.Serve(ln); err != proxyserver.ErrServerClosed {
		log.Fatal(err)
	}
}
