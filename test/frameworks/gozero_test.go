package frameworks

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/zeromicro/go-zero/core/discov"
	"github.com/zeromicro/go-zero/core/logx"

	"github.com/discodns/discodns/etcdembed"
	"github.com/discodns/discodns/test/registries"
)

// TestGoZeroPublisher: go-zero's own core/discov Publisher, as zrpc
// servers use it, registers into a real etcd with a lease kept alive, and
// discodns (format gozero, the whole keyspace) answers dig and Go's
// resolver; when the publisher stops (its lease revoked), the name goes.
func TestGoZeroPublisher(t *testing.T) {
	logx.Disable()
	endpoint := startEtcd(t)
	d := serveEtcd(t, endpoint, "gozero")

	pub := discov.NewPublisher([]string{endpoint}, "hello.rpc", "10.1.2.3:8080")
	if err := pub.KeepAlive(); err != nil {
		t.Fatalf("go-zero KeepAlive: %v", err)
	}
	stopped := false
	defer func() {
		if !stopped {
			pub.Stop()
		}
	}()

	eventually(t, 30*time.Second, "dig finds go-zero's instance", func() error {
		out, err := d.dig("+short", "hello-rpc.svc.internal.", "A").CombinedOutput()
		if err != nil || strings.TrimSpace(string(out)) != "10.1.2.3" {
			return fmt.Errorf("dig A: %q %v", out, err)
		}
		return nil
	})
	res := resolver(d)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, srvs, err := res.LookupSRV(ctx, "hello-rpc", "tcp", "svc.internal")
	if err != nil || len(srvs) != 1 || srvs[0].Port != 8080 || !strings.HasSuffix(srvs[0].Target, ".hello-rpc.svc.internal.") {
		t.Fatalf("Go LookupSRV _hello-rpc._tcp: %+v %v", srvs, err)
	}
	if addrs, err := res.LookupHost(ctx, srvs[0].Target); err != nil || fmt.Sprint(addrs) != "[10.1.2.3]" {
		t.Errorf("Go LookupHost %s: %v %v", srvs[0].Target, addrs, err)
	}

	pub.Stop()
	stopped = true
	eventually(t, 30*time.Second, "the name gone with go-zero's lease", func() error {
		out, err := d.dig("hello-rpc.svc.internal.", "A").CombinedOutput()
		if err != nil || !strings.Contains(string(out), "status: NXDOMAIN") {
			return fmt.Errorf("dig A: %s %v", out, err)
		}
		return nil
	})
}

// resolver is Go's resolver asking d alone.
func resolver(d *discodns) *net.Resolver { return registries.Resolver(d.dns) }

// startEtcd starts an embedded etcd for the test and returns its client
// address.
func startEtcd(t *testing.T) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	srv, err := etcdembed.Start(ctx, etcdembed.Options{
		Dir:        t.TempDir(),
		ClientAddr: fmt.Sprintf("127.0.0.1:%d", registries.FreePort(t)),
		PeerAddr:   fmt.Sprintf("127.0.0.1:%d", registries.FreePort(t)),
		Logger:     slog.New(slog.NewTextHandler(io.Discard, nil)),
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Close)
	return srv.Endpoints()[0]
}

// discodns is the real binary, built from the repository, serving a
// configuration.
type discodns struct {
	dns, host, port string
	digPath         string
}

// serveEtcd starts discodns reading the etcd at endpoint in format, zone
// svc.internal.
func serveEtcd(t *testing.T, endpoint, format string) *discodns {
	t.Helper()
	return startDiscodns(t, fmt.Sprintf(`
[dns]
listen = ["{{DNS}}"]
zone = "svc.internal."

[http]
listen = "{{HTTP}}"

[[source]]
name = %[2]q
type = "etcd"
endpoints = [%[1]q]
format = %[2]q
`, endpoint, format))
}

// dig runs dig against d with args.
func (d *discodns) dig(args ...string) *exec.Cmd {
	return exec.Command(d.digPath, append([]string{"@" + d.host, "-p", d.port}, args...)...)
}

// startDiscodns builds discodns, starts it with config ({{DNS}} and
// {{HTTP}} become free loopback addresses) and waits until it is ready.
func startDiscodns(t *testing.T, config string) *discodns {
	t.Helper()
	digPath, err := exec.LookPath("dig")
	if err != nil {
		t.Fatalf("dig is required (./test/run.sh installs it): %v", err)
	}
	dir := t.TempDir()
	binary := filepath.Join(dir, "discodns")
	build := exec.Command("go", "build", "-race", "-o", binary, ".")
	build.Dir = filepath.Join("..", "..")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("build discodns: %v\n%s", err, out)
	}
	port := fmt.Sprint(registries.FreePort(t))
	d := &discodns{dns: "127.0.0.1:" + port, host: "127.0.0.1", port: port, digPath: digPath}
	httpAddr := fmt.Sprintf("127.0.0.1:%d", registries.FreePort(t))
	config = strings.NewReplacer("{{DNS}}", d.dns, "{{HTTP}}", httpAddr).Replace(config)
	path := filepath.Join(dir, "discodns.toml")
	if err := os.WriteFile(path, []byte(config), 0o600); err != nil {
		t.Fatal(err)
	}
	var logs strings.Builder
	cmd := exec.Command(binary, "-config", path)
	cmd.Stdout, cmd.Stderr = &logs, &logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	go func() { cmd.Wait(); close(exited) }()
	t.Cleanup(func() {
		cmd.Process.Signal(os.Interrupt)
		select {
		case <-exited:
		case <-time.After(10 * time.Second):
			cmd.Process.Kill()
			<-exited
		}
		if t.Failed() {
			t.Logf("discodns output:\n%s", logs.String())
		}
	})
	eventually(t, 30*time.Second, "discodns ready", func() error {
		select {
		case <-exited:
			t.Fatalf("discodns exited:\n%s", logs.String())
		default:
		}
		resp, err := http.Get("http://" + httpAddr + "/readyz")
		if err != nil {
			return err
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("readyz: %s", resp.Status)
		}
		return nil
	})
	return d
}

// eventually calls check until it succeeds, and fails the test with its
// last error when within has passed.
func eventually(t *testing.T, within time.Duration, what string, check func() error) {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		err := check()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %v: %v", what, within, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
