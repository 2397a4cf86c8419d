package registries

import (
	"fmt"
	"net"
	"os/exec"
	"syscall"
	"testing"
	"time"
)

// Dnsmasq is a dnsmasq (Debian dnsmasq-base) serving a few names on a
// loopback port: an upstream resolver for forwarding tests.
type Dnsmasq struct {
	Process
	t     testing.TB
	port  int
	hosts map[string]string
	ttl   int
}

// StartDnsmasq serves hosts (name -> IPv4) under example.test with the given
// TTL; other example.test names are NXDOMAIN. It stops when the test ends.
func StartDnsmasq(t testing.TB, hosts map[string]string, ttl int) *Dnsmasq {
	t.Helper()
	if _, err := exec.LookPath("dnsmasq"); err != nil {
		t.Fatalf("dnsmasq is required (./test/run.sh installs dnsmasq-base): %v", err)
	}
	d := &Dnsmasq{Process: Process{name: "dnsmasq"}, t: t, port: FreePort(t), hosts: hosts, ttl: ttl}
	d.Start()
	d.cleanup(t)
	return d
}

// Addr is the address dnsmasq serves on, IP:port.
func (d *Dnsmasq) Addr() string { return fmt.Sprintf("127.0.0.1:%d", d.port) }

// SetHost changes (or adds) a name; it takes effect at the next Start.
func (d *Dnsmasq) SetHost(name, ip string) { d.hosts[name] = ip }

// Start starts dnsmasq and waits until it answers.
func (d *Dnsmasq) Start() {
	d.t.Helper()
	args := []string{"--keep-in-foreground", "--conf-file=/dev/null", "--no-resolv", "--no-hosts",
		"--listen-address=127.0.0.1", "--bind-interfaces", fmt.Sprintf("--port=%d", d.port),
		"--local=/example.test/", fmt.Sprintf("--local-ttl=%d", d.ttl), "--pid-file=", "--log-facility=-"}
	if syscall.Geteuid() == 0 {
		args = append(args, "--user=root")
	}
	for name, ip := range d.hosts {
		args = append(args, fmt.Sprintf("--host-record=%s,%s", name, ip))
	}
	// dnsmasq binds UDP and TCP together; TCP tells when it is up.
	d.start(d.t, 10*time.Second, func() bool {
		c, err := net.DialTimeout("tcp", d.Addr(), 100*time.Millisecond)
		if err == nil {
			c.Close()
		}
		return err == nil
	}, append([]string{"dnsmasq"}, args...)...)
}
