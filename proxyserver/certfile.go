package proxyserver

import (
	"crypto/tls"
	"fmt"
	"log/slog"
	"os"
	"sync"
)

// CertFile serves a certificate and key from PEM files and re-reads them when either
// changes, so that a renewed certificate (certbot, cert-manager) is used without a restart.
// Use its GetCertificate as tls.Config.GetCertificate.
//
// Every TLS handshake compares both files' modification time, size and inode with the last
// load. A pair that does not load (a renewal caught halfway, with the new certificate and
// the old key) keeps the previous certificate in use and is logged once; the next change to
// either file is tried again.
type CertFile struct {
	certPath, keyPath string
	logger            *slog.Logger

	mu     sync.Mutex
	cert   *tls.Certificate
	stamp  [2]fileStamp
	broken [2]fileStamp
}

// NewCertFile loads the pair; it fails when they do not load as a certificate and its key.
// logger (nil: discard) hears about reloads.
func NewCertFile(certPath, keyPath string, logger *slog.Logger) (*CertFile, error) {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	c := &CertFile{certPath: certPath, keyPath: keyPath, logger: logger}
	stamp, err := c.stamps()
	if err != nil {
		return nil, err
	}
	cert, err := tls.LoadX509KeyPair(certPath, keyPath)
	if err != nil {
		return nil, fmt.Errorf("load certificate %s and key %s: %w", certPath, keyPath, err)
	}
	c.cert, c.stamp = &cert, stamp
	return c, nil
}

func (c *CertFile) stamps() ([2]fileStamp, error) {
	var st [2]fileStamp
	for i, p := range []string{c.certPath, c.keyPath} {
		fi, err := os.Stat(p)
		if err != nil {
			return st, err
		}
		st[i] = stampOf(fi)
	}
	return st, nil
}

// GetCertificate returns the current certificate, reloading it first if the files changed.
func (c *CertFile) GetCertificate(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	stamp, err := c.stamps()
	if err != nil || stamp[0].same(c.stamp[0]) && stamp[1].same(c.stamp[1]) ||
		stamp[0].same(c.broken[0]) && stamp[1].same(c.broken[1]) {
		return c.cert, nil
	}
	cert, err := tls.LoadX509KeyPair(c.certPath, c.keyPath)
	if err != nil {
		c.broken = stamp
		c.logger.Error("certificate reload failed; serving the one loaded before", "cert", c.certPath, "key", c.keyPath, "err", err)
		return c.cert, nil
	}
	c.cert, c.stamp, c.broken = &cert, stamp, [2]fileStamp{}
	c.logger.Info("certificate reloaded", "cert", c.certPath)
	return c.cert, nil
}
