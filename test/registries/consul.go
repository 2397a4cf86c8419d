// Package registries starts real service registries (a Consul agent, a
// ZooKeeper server) on free loopback ports for integration and end-to-end
// tests. A registry that is not installed fails the test: ./test/run.sh
// installs them all.
package registries

import (
	"bytes"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"syscall"
	"testing"
	"time"
)

// ConsulBinary finds the consul binary: $PATH first, then the cache that
// test/tools/build-consul.sh fills.
func ConsulBinary() (string, error) {
	if p, err := exec.LookPath("consul"); err == nil {
		return p, nil
	}
	cache := os.Getenv("DISCODNS_CACHE")
	if cache == "" {
		home, err := os.UserHomeDir()
		if err != nil {
			return "", err
		}
		cache = filepath.Join(home, ".cache", "discodns")
	}
	p := filepath.Join(cache, "bin", "consul")
	if _, err := os.Stat(p); err != nil {
		return "", fmt.Errorf("consul not in $PATH nor in %s (./test/run.sh builds it): %w", p, err)
	}
	return p, nil
}

// Consul is a `consul agent -dev` process, which keeps its state in memory:
// a restart starts it empty.
type Consul struct {
	t      testing.TB
	bin    string
	ports  map[string]int
	cmd    *exec.Cmd
	done   chan struct{}
	mu     sync.Mutex
	output bytes.Buffer
}

// StartConsul starts a dev agent on free loopback ports and stops it when
// the test ends.
func StartConsul(t testing.TB) *Consul {
	t.Helper()
	bin, err := ConsulBinary()
	if err != nil {
		t.Fatal(err)
	}
	c := &Consul{t: t, bin: bin, ports: map[string]int{}}
	for _, name := range []string{"http", "serf-lan", "serf-wan", "server"} {
		c.ports[name] = FreePort(t)
	}
	c.Start()
	t.Cleanup(func() {
		c.Stop()
		if t.Failed() {
			c.mu.Lock()
			t.Logf("consul output:\n%s", c.output.String())
			c.mu.Unlock()
		}
	})
	return c
}

// Addr is the agent's HTTP address, host:port.
func (c *Consul) Addr() string { return fmt.Sprintf("127.0.0.1:%d", c.ports["http"]) }

// Start starts the agent (again, empty) and waits until it has a leader.
func (c *Consul) Start() {
	c.t.Helper()
	args := []string{"agent", "-dev", "-bind", "127.0.0.1", "-client", "127.0.0.1",
		"-node", "dev", "-log-level", "warn",
		"-dns-port", "-1", "-grpc-port", "-1", "-grpc-tls-port", "-1"}
	for _, name := range []string{"http", "serf-lan", "serf-wan", "server"} {
		args = append(args, fmt.Sprintf("-%s-port", name), fmt.Sprint(c.ports[name]))
	}
	c.cmd = exec.Command(c.bin, args...)
	c.cmd.Stdout = &lockedWriter{&c.mu, &c.output}
	c.cmd.Stderr = c.cmd.Stdout
	if err := c.cmd.Start(); err != nil {
		c.t.Fatalf("start consul: %v", err)
	}
	c.done = make(chan struct{})
	go func(cmd *exec.Cmd, done chan struct{}) { cmd.Wait(); close(done) }(c.cmd, c.done)
	deadline := time.Now().Add(60 * time.Second)
	for {
		resp, err := http.Get("http://" + c.Addr() + "/v1/status/leader")
		if err == nil {
			var body [64]byte
			n, _ := resp.Body.Read(body[:])
			resp.Body.Close()
			if resp.StatusCode == 200 && n > 2 && string(body[:n]) != `""` {
				return
			}
		}
		select {
		case <-c.done:
			c.t.Fatalf("consul exited while starting:\n%s", c.Output())
		default:
		}
		if time.Now().After(deadline) {
			c.t.Fatalf("consul not ready within 60 s: %v\n%s", err, c.Output())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// Stop kills the agent and waits for it to exit.
func (c *Consul) Stop() {
	if c.cmd == nil {
		return
	}
	c.cmd.Process.Signal(syscall.SIGKILL)
	<-c.done
	c.cmd = nil
}

// Pid is the agent's process id.
func (c *Consul) Pid() int { return c.cmd.Process.Pid }

// Output is what the agent printed so far.
func (c *Consul) Output() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.output.String()
}

// FreePort returns a loopback port free for both UDP and TCP right now.
func FreePort(t testing.TB) int {
	t.Helper()
	for range 50 {
		pc, err := net.ListenPacket("udp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		port := pc.LocalAddr().(*net.UDPAddr).Port
		l, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", port))
		pc.Close()
		if err == nil {
			l.Close()
			return port
		}
	}
	t.Fatal("no free port")
	return 0
}

type lockedWriter struct {
	mu *sync.Mutex
	w  *bytes.Buffer
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}
