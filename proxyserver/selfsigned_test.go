package proxyserver

import (
	"crypto/tls"
	"crypto/x509"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/tessel/tessel-proxy/internal/atomicfile"
)

func TestEnsureSelfSignedWritesAUsablePairOnce(t *testing.T) {
	dir := t.TempDir()
	cert, key := filepath.Join(dir, "sub", "cert.pem"), filepath.Join(dir, "sub", "key.pem")
	created, err := EnsureSelfSigned(cert, key, []string{"proxy.example.net", "192.0.2.7"})
	if err != nil || !created {
		t.Fatalf("first call: created=%v, %v", created, err)
	}
	fi, err := os.Stat(key)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("key mode %v, want 0600", fi.Mode().Perm())
	}
	pair, err := tls.LoadX509KeyPair(cert, key)
	if err != nil {
		t.Fatalf("generated files do not load as a pair: %v", err)
	}
	leaf, err := x509.ParseCertificate(pair.Certificate[0])
	if err != nil {
		t.Fatal(err)
	}
	for _, host := range []string{"proxy.example.net", "192.0.2.7"} {
		if err := leaf.VerifyHostname(host); err != nil {
			t.Errorf("certificate does not cover %s: %v", host, err)
		}
	}
	// Trusted as a root by itself, as PROXY_CERT makes a client do.
	roots := x509.NewCertPool()
	roots.AddCert(leaf)
	if _, err := leaf.Verify(x509.VerifyOptions{Roots: roots, DNSName: "proxy.example.net"}); err != nil {
		t.Errorf("self-signed certificate does not verify against itself: %v", err)
	}
	entries, _ := os.ReadDir(filepath.Dir(cert))
	if len(entries) != 2 {
		t.Errorf("left temporary files behind: %v", entries)
	}

	before, _ := os.ReadFile(cert)
	if created, err := EnsureSelfSigned(cert, key, []string{"other"}); err != nil || created {
		t.Fatalf("second call: created=%v, %v; want the existing pair kept", created, err)
	}
	if after, _ := os.ReadFile(cert); string(after) != string(before) {
		t.Error("existing certificate overwritten")
	}

	os.Remove(key)
	if _, err := EnsureSelfSigned(cert, key, nil); err == nil || !strings.Contains(err.Error(), key) {
		t.Errorf("certificate without key: %v, want an error naming %s", err, key)
	}
}

func TestCertFingerprintMatchesOpenSSL(t *testing.T) {
	openssl, err := exec.LookPath("openssl")
	if err != nil {
		t.Fatal("openssl is needed to check fingerprints: apt-get install openssl")
	}
	dir := t.TempDir()
	cert, key := filepath.Join(dir, "c.pem"), filepath.Join(dir, "k.pem")
	if _, err := EnsureSelfSigned(cert, key, nil); err != nil {
		t.Fatal(err)
	}
	fp, err := CertFingerprint(cert)
	if err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(openssl, "x509", "-noout", "-fingerprint", "-sha256", "-in", cert).Output()
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(out), fp) {
		t.Errorf("fingerprint %s; openssl says %s", fp, out)
	}
}

func TestCertFileReloadsRenewedCertificate(t *testing.T) {
	dir := t.TempDir()
	certPath, keyPath := filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	write := func(hosts ...string) {
		t.Helper()
		certPEM, keyPEM, err := GenerateSelfSigned(hosts, time.Now())
		if err != nil {
			t.Fatal(err)
		}
		if err := atomicfile.WriteFile(keyPath, keyPEM, 0o600); err != nil {
			t.Fatal(err)
		}
		if err := atomicfile.WriteFile(certPath, certPEM, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("first.example")
	cf, err := NewCertFile(certPath, keyPath, nil)
	if err != nil {
		t.Fatal(err)
	}
	served := func() string {
		t.Helper()
		cert, err := cf.GetCertificate(nil)
		if err != nil {
			t.Fatal(err)
		}
		leaf, err := x509.ParseCertificate(cert.Certificate[0])
		if err != nil {
			t.Fatal(err)
		}
		return leaf.DNSNames[0]
	}
	if got := served(); got != "first.example" {
		t.Fatalf("serving %s", got)
	}
	write("renewed.example") // new inodes: atomic renames, as certbot's are
	if got := served(); got != "renewed.example" {
		t.Fatalf("after renewal serving %s", got)
	}
	// Halfway through a renewal: a new certificate next to the old key.
	otherCert, _, _ := GenerateSelfSigned([]string{"half.example"}, time.Now())
	if err := atomicfile.WriteFile(certPath, otherCert, 0o644); err != nil {
		t.Fatal(err)
	}
	if got := served(); got != "renewed.example" {
		t.Fatalf("a mismatched pair replaced the working certificate: serving %s", got)
	}
}

func TestSelfSignedHosts(t *testing.T) {
	machine, err := os.Hostname()
	if err != nil || machine == "" {
		t.Skipf("this machine has no host name (%v)", err)
	}
	loopback := []string{"localhost", "127.0.0.1", "::1"}
	tests := []struct {
		name string
		o    SelfSignedOptions
		want []string
	}{
		{"the names asked for, then the listen host", SelfSignedOptions{Hostnames: []string{"proxy.example.net"}, Listen: "192.0.2.1:443"},
			[]string{"proxy.example.net", "192.0.2.1"}},
		{"every address and no names: this machine and loopback", SelfSignedOptions{Listen: ":443"},
			append([]string{machine}, loopback...)},
		{"an unspecified listen host is not a name", SelfSignedOptions{Hostnames: []string{"p"}, Listen: "[::]:443"}, []string{"p"}},
		{"dev: loopback, without repeats", SelfSignedOptions{Dev: true, Listen: "127.0.0.1:0"}, loopback},
		{"dev with a name", SelfSignedOptions{Dev: true, Hostnames: []string{"::1", "dev.example"}, Listen: "127.0.0.1:0"},
			[]string{"::1", "dev.example", "localhost", "127.0.0.1"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := SelfSignedHosts(tt.o); !slices.Equal(got, tt.want) {
				t.Errorf("got %q, want %q", got, tt.want)
			}
		})
	}
}

// A dev server's certificate that does not name the address clients are told to use is
// replaced; an operator's is left alone.
func TestBootstrapSelfSignedReplacesOnlyADevCertificateThatDoesNotFit(t *testing.T) {
	for _, dev := range []bool{true, false} {
		dir := t.TempDir()
		o := SelfSignedOptions{CertFile: filepath.Join(dir, "cert.pem"), KeyFile: filepath.Join(dir, "key.pem"),
			Hostnames: []string{"old.example"}, Listen: "127.0.0.1:0", Dev: dev, ClientHost: "127.0.0.1"}
		if _, err := EnsureSelfSigned(o.CertFile, o.KeyFile, []string{"old.example"}); err != nil {
			t.Fatal(err)
		}
		created, err := BootstrapSelfSigned(o)
		if err != nil {
			t.Fatal(err)
		}
		if created != dev {
			t.Errorf("dev=%v: created=%v, want %v", dev, created, dev)
		}
		err = CertCovers(o.CertFile, "127.0.0.1")
		if dev && err != nil {
			t.Errorf("dev: the new certificate does not name the client address: %v", err)
		}
		if !dev && err == nil {
			t.Error("not dev: the operator's certificate was replaced")
		}
		if created, err := BootstrapSelfSigned(o); err != nil || created {
			t.Errorf("dev=%v: a second start generated again (%v, %v)", dev, created, err)
		}
	}
}
