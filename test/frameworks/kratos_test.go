package frameworks

import (
	"context"
	"encoding/json"
	"fmt"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/go-kratos/kratos/v2"
	"github.com/go-kratos/kratos/v2/registry"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// kratosEtcdRegistrar writes what Kratos's etcd registry writes
// (Register and Deregister in contrib/registry/etcd/registry.go of
// github.com/go-kratos/kratos: key <namespace>/<name>/<id>, value
// json.Marshal of the instance, under a 15 s lease), a module the Go
// module proxy here does not serve.
type kratosEtcdRegistrar struct{ cli *clientv3.Client }

func (r kratosEtcdRegistrar) key(s *registry.ServiceInstance) string {
	return fmt.Sprintf("%s/%s/%s", "/microservices", s.Name, s.ID)
}

func (r kratosEtcdRegistrar) Register(ctx context.Context, s *registry.ServiceInstance) error {
	value, err := json.Marshal(s)
	if err != nil {
		return err
	}
	lease, err := r.cli.Grant(ctx, 15)
	if err != nil {
		return err
	}
	_, err = r.cli.Put(ctx, r.key(s), string(value), clientv3.WithLease(lease.ID))
	return err
}

func (r kratosEtcdRegistrar) Deregister(ctx context.Context, s *registry.ServiceInstance) error {
	_, err := r.cli.Delete(ctx, r.key(s))
	return err
}

// TestKratosApp: a Kratos application (kratos.New; its buildInstance makes
// the registry.ServiceInstance) registers through the etcd registry's
// writes, and discodns (format kratos) answers each endpoint as a named
// port; when the application stops, it deregisters and the name goes.
func TestKratosApp(t *testing.T) {
	endpoint := startEtcd(t)
	cli, err := clientv3.New(clientv3.Config{Endpoints: []string{endpoint}, DialTimeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer cli.Close()
	d := serveEtcd(t, endpoint, "kratos")

	app := kratos.New(kratos.ID("f3c6a1e2-user-1"), kratos.Name("user"), kratos.Version("v1.0.0"),
		kratos.Metadata(map[string]string{"zone": "a"}),
		kratos.Endpoint(&url.URL{Scheme: "grpc", Host: "10.1.2.5:9000"}, &url.URL{Scheme: "http", Host: "10.1.2.5:8000"}),
		kratos.Registrar(kratosEtcdRegistrar{cli}))
	done := make(chan error, 1)
	go func() { done <- app.Run() }()

	srv := func(name string) string {
		out, err := d.dig("+short", name, "SRV").CombinedOutput()
		if err != nil {
			return err.Error()
		}
		return strings.TrimSpace(string(out))
	}
	eventually(t, 30*time.Second, "dig finds Kratos's grpc endpoint", func() error {
		if got, want := srv("_grpc._tcp.user.svc.internal."), "1 1 9000 f3c6a1e2-user-1.user.svc.internal."; got != want {
			return fmt.Errorf("SRV _grpc._tcp.user: %q, want %q", got, want)
		}
		return nil
	})
	if got, want := srv("_http._tcp.user.svc.internal."), "1 1 8000 f3c6a1e2-user-1.user.svc.internal."; got != want {
		t.Errorf("SRV _http._tcp.user: %q, want %q", got, want)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if addrs, err := resolver(d).LookupHost(ctx, "user.svc.internal"); err != nil || fmt.Sprint(addrs) != "[10.1.2.5]" {
		t.Errorf("Go LookupHost user: %v %v", addrs, err)
	}

	if err := app.Stop(); err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil {
		t.Fatalf("kratos app: %v", err)
	}
	eventually(t, 30*time.Second, "the name gone with the deregistration", func() error {
		if got := srv("_grpc._tcp.user.svc.internal."); got != "" {
			return fmt.Errorf("SRV _grpc._tcp.user: %q", got)
		}
		return nil
	})
}
