package registries

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// StartConsulTLS is StartConsul with the agent's HTTPS API on a free port
// too (HTTPSAddr), under a certificate for 127.0.0.1 signed by a CA of
// its own (CAFile). Consul serves HTTP/2 there.
func StartConsulTLS(t testing.TB) *Consul {
	t.Helper()
	bin, err := ConsulBinary()
	if err != nil {
		t.Fatal(err)
	}
	c := &Consul{Process: Process{name: "consul"}, t: t, bin: bin, ports: map[string]int{}}
	for _, name := range []string{"http", "https", "serf-lan", "serf-wan", "server"} {
		c.ports[name] = FreePort(t)
	}
	c.tlsDir = t.TempDir()
	if err := writeTestCerts(c.tlsDir); err != nil {
		t.Fatal(err)
	}
	c.Start()
	c.cleanup(t)
	return c
}

// HTTPSAddr is the agent's HTTPS address, host:port (StartConsulTLS).
func (c *Consul) HTTPSAddr() string { return fmt.Sprintf("127.0.0.1:%d", c.ports["https"]) }

// CAFile is the CA that signed the agent's certificate (StartConsulTLS).
func (c *Consul) CAFile() string { return filepath.Join(c.tlsDir, "ca.pem") }

// tlsConfig is the -hcl of the agent's TLS, "" without.
func (c *Consul) tlsConfig() string {
	if c.tlsDir == "" {
		return ""
	}
	return fmt.Sprintf(`tls { defaults { ca_file = %q, cert_file = %q, key_file = %q } }`,
		c.CAFile(), filepath.Join(c.tlsDir, "agent.pem"), filepath.Join(c.tlsDir, "agent-key.pem"))
}

// writeTestCerts writes into dir a CA (ca.pem) and a certificate for
// 127.0.0.1 it signed (agent.pem, agent-key.pem).
func writeTestCerts(dir string) error {
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return err
	}
	now := time.Now()
	ca := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "discodns test CA"},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(24 * time.Hour),
		IsCA:                  true,
		KeyUsage:              x509.KeyUsageCertSign,
		BasicConstraintsValid: true,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, ca, ca, &caKey.PublicKey, caKey)
	if err != nil {
		return err
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return err
	}
	leaf := &x509.Certificate{
		SerialNumber: big.NewInt(2),
		Subject:      pkix.Name{CommonName: "server.dc1.consul"},
		DNSNames:     []string{"server.dc1.consul", "localhost"},
		IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 1)},
		NotBefore:    now.Add(-time.Hour),
		NotAfter:     now.Add(24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
	}
	leafDER, err := x509.CreateCertificate(rand.Reader, leaf, ca, &key.PublicKey, caKey)
	if err != nil {
		return err
	}
	keyDER, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		return err
	}
	for name, block := range map[string]*pem.Block{
		"ca.pem":        {Type: "CERTIFICATE", Bytes: caDER},
		"agent.pem":     {Type: "CERTIFICATE", Bytes: leafDER},
		"agent-key.pem": {Type: "EC PRIVATE KEY", Bytes: keyDER},
	} {
		if err := os.WriteFile(filepath.Join(dir, name), pem.EncodeToMemory(block), 0o600); err != nil {
			return err
		}
	}
	return nil
}
