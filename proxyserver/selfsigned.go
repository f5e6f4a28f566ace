package proxyserver

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"math/big"
	"net"
	"net/netip"
	"os"
	"strings"
	"time"

	"github.com/tessel/tessel-proxy/internal/atomicfile"
	"github.com/tessel/tessel-proxy/internal/hostport"
)

// SelfSignedValidity is how long a generated certificate is valid.
const SelfSignedValidity = 5 * 365 * 24 * time.Hour

// SelfSignedOptions says which certificate BootstrapSelfSigned makes sure of.
type SelfSignedOptions struct {
	CertFile, KeyFile string
	// Hostnames are the DNS names and IP addresses the operator asked for (serve --hostname).
	Hostnames []string
	// Listen is the address the server listens on; a specific host in it is named too.
	Listen string
	// Dev is a development server: the certificate names loopback too, and one that does not
	// name ClientHost (the address clients are told to use) is replaced, since the files are
	// the dev server's own.
	Dev        bool
	ClientHost string
	// Logger hears that a dev certificate is replaced; nil is slog.Default().
	Logger *slog.Logger
}

// BootstrapSelfSigned makes sure o.CertFile and o.KeyFile hold a certificate and its key,
// generating a self-signed pair for SelfSignedHosts(o) when neither file exists (see
// EnsureSelfSigned), and reports whether it generated one.
func BootstrapSelfSigned(o SelfSignedOptions) (created bool, err error) {
	if o.Dev {
		if err := CertCovers(o.CertFile, o.ClientHost); err != nil && !errors.Is(err, fs.ErrNotExist) {
			logger := o.Logger
			if logger == nil {
				logger = slog.Default()
			}
			logger.Info("replacing the dev certificate", "reason", err)
			os.Remove(o.CertFile)
			os.Remove(o.KeyFile)
		}
	}
	return EnsureSelfSigned(o.CertFile, o.KeyFile, SelfSignedHosts(o))
}

// SelfSignedHosts returns the names a certificate generated for o is for, without repeats:
// o.Hostnames, loopback for a dev server, and the listen host unless it is every address.
// With none of those it names this machine (os.Hostname) and loopback, so that a client's
// name mismatch is explicable from the names serve prints.
func SelfSignedHosts(o SelfSignedOptions) []string {
	hosts := append([]string(nil), o.Hostnames...)
	if o.Dev {
		hosts = append(hosts, "localhost", "127.0.0.1", "::1")
	}
	if host, _, err := net.SplitHostPort(o.Listen); err == nil && host != "" {
		if a, err := netip.ParseAddr(host); err != nil || !a.IsUnspecified() {
			hosts = append(hosts, host)
		}
	}
	if len(hosts) == 0 {
		if name, err := os.Hostname(); err == nil && name != "" {
			hosts = append(hosts, name)
		}
		hosts = append(hosts, "localhost", "127.0.0.1", "::1")
	}
	seen := make(map[string]bool, len(hosts))
	out := hosts[:0]
	for _, h := range hosts {
		if !seen[h] {
			seen[h] = true
			out = append(out, h)
		}
	}
	return out
}

// EnsureSelfSigned makes sure certFile and keyFile hold a certificate and its key. When both
// exist it leaves them alone; when neither does it generates an ECDSA P-256 key and a
// self-signed certificate for hosts (DNS names or IP addresses; none: localhost, 127.0.0.1
// and ::1), writes the key with mode 0600 and both files atomically, and reports created.
// The certificate is its own CA, so a client can trust it as a root (PROXY_CERT, curl
// --cacert). One file without the other is an error: the server will not overwrite either.
func EnsureSelfSigned(certFile, keyFile string, hosts []string) (created bool, err error) {
	certExists, err := exists(certFile)
	if err != nil {
		return false, err
	}
	keyExists, err := exists(keyFile)
	if err != nil {
		return false, err
	}
	switch {
	case certExists && keyExists:
		return false, nil
	case certExists:
		return false, fmt.Errorf("%s exists but %s does not: give the key of that certificate, or remove it to generate a new pair", certFile, keyFile)
	case keyExists:
		return false, fmt.Errorf("%s exists but %s does not: give its certificate, or remove it to generate a new pair", keyFile, certFile)
	}
	certPEM, keyPEM, err := GenerateSelfSigned(hosts, time.Now())
	if err != nil {
		return false, err
	}
	if err := atomicfile.WriteFile(keyFile, keyPEM, 0o600); err != nil {
		return false, err
	}
	if err := atomicfile.WriteFile(certFile, certPEM, 0o644); err != nil {
		return false, err
	}
	return true, nil
}

// GenerateSelfSigned returns a PEM certificate and PEM PKCS#8 key for hosts, valid from now
// for SelfSignedValidity.
func GenerateSelfSigned(hosts []string, now time.Time) (certPEM, keyPEM []byte, err error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, fmt.Errorf("generate key: %w", err)
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		return nil, nil, fmt.Errorf("generate serial: %w", err)
	}
	if len(hosts) == 0 {
		hosts = []string{"localhost", "127.0.0.1", "::1"}
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: hosts[0], Organization: []string{"tessel-proxy self-signed"}},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(SelfSignedValidity),
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	for _, h := range hosts {
		h, _ = hostport.Unbracket(h)
		if addr, err := netip.ParseAddr(h); err == nil {
			tmpl.IPAddresses = append(tmpl.IPAddresses, addr.AsSlice())
		} else if h != "" {
			tmpl.DNSNames = append(tmpl.DNSNames, h)
		}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, nil, fmt.Errorf("create certificate: %w", err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, nil, fmt.Errorf("encode key: %w", err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}), nil
}

// CertFingerprint returns the SHA-256 fingerprint of the first certificate in the PEM file,
// as colon-separated upper-case hex (the form `openssl x509 -fingerprint -sha256` prints).
func CertFingerprint(certFile string) (string, error) {
	leaf, err := readLeaf(certFile)
	if err != nil {
		return "", err
	}
	sum := sha256.Sum256(leaf.Raw)
	h := strings.ToUpper(hex.EncodeToString(sum[:]))
	parts := make([]string, 0, len(sum))
	for i := 0; i < len(h); i += 2 {
		parts = append(parts, h[i:i+2])
	}
	return strings.Join(parts, ":"), nil
}

// readLeaf parses the first certificate in a PEM file.
func readLeaf(certFile string) (*x509.Certificate, error) {
	data, err := os.ReadFile(certFile)
	if err != nil {
		return nil, err
	}
	for {
		var block *pem.Block
		block, data = pem.Decode(data)
		if block == nil {
			return nil, fmt.Errorf("%s: no PEM certificate in it", certFile)
		}
		if block.Type == "CERTIFICATE" {
			return x509.ParseCertificate(block.Bytes)
		}
	}
}

// CertNames returns the DNS names and IP addresses the certificate in certFile is for.
func CertNames(certFile string) ([]string, error) {
	leaf, err := readLeaf(certFile)
	if err != nil {
		return nil, err
	}
	names := append([]string(nil), leaf.DNSNames...)
	for _, ip := range leaf.IPAddresses {
		names = append(names, ip.String())
	}
	return names, nil
}

// CertCovers returns nil when the certificate in certFile is valid for host for at least
// another day, else why not.
func CertCovers(certFile, host string) error {
	leaf, err := readLeaf(certFile)
	if err != nil {
		return err
	}
	if time.Now().Add(24 * time.Hour).After(leaf.NotAfter) {
		return errors.New("certificate expires within a day")
	}
	return leaf.VerifyHostname(host)
}

func exists(path string) (bool, error) {
	_, err := os.Stat(path)
	if err == nil {
		return true, nil
	}
	if errors.Is(err, fs.ErrNotExist) {
		return false, nil
	}
	return false, err
}
