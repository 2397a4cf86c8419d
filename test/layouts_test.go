package test

import (
	"fmt"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/hashicorp/consul/api"

	"github.com/discodns/discodns/config"
	"github.com/discodns/discodns/test/registries"
)

// TestLayoutsCommand fills a real etcd, a real ZooKeeper and a real Consul
// with several layouts at once and runs `discodns layouts` on all three:
// its output names each layout with its prefix and counts, and the
// [[source]] blocks it prints load with config.Load and, served by
// discodns, answer every service.
func TestLayoutsCommand(t *testing.T) {
	e := startEtcd(t)
	for key, value := range map[string]string{
		"/services/web/10.0.0.1:80":            "",
		"/services/web/10.0.0.2:80":            `{"weight":5}`,
		"/services/db/10.0.1.1:5432":           `{}`,
		"/grpc/echo/10.0.2.1:50051":            `{"Op":0,"Addr":"10.0.2.1:50051","Metadata":null}`,
		"/grpc/echo/10.0.2.2:50051":            `{"Op":0,"Addr":"10.0.2.2:50051","Metadata":null}`,
		"/skydns/internal/svc/api/a":           `{"host":"10.0.3.1","port":8080}`,
		"/skydns/internal/svc/api/b":           `{"host":"10.0.3.2","port":8080}`,
		"/skydns/internal/svc/one":             `{"host":"10.0.3.3","port":80}`,
		dubboProviderKey("/dubbo", "10.0.4.1"): ``,
		"/config/feature-flags/dark":           `on`,
		"/config/feature-flags/light":          `off`,
	} {
		e.put(key, value)
	}
	zkServer := registries.StartZooKeeper(t)
	conn := registries.ZKClient(t, zkServer.Addr())
	for p, data := range map[string]string{
		"/services/orders/0c5a":                 `{"name":"orders","id":"0c5a","address":"10.1.0.1","port":8080,"sslPort":8443}`,
		"/services/orders/7d1e":                 `{"name":"orders","id":"7d1e","address":"10.1.0.2","port":8080}`,
		"/aurora/prod/search/member_0000000001": `{"serviceEndpoint":{"host":"10.1.1.1","port":9000},"additionalEndpoints":{},"status":"ALIVE"}`,
		"/aurora/prod/search/member_0000000002": `{"serviceEndpoint":{"host":"10.1.1.2","port":9000},"additionalEndpoints":{},"status":"ALIVE"}`,
		dubboProviderKey("/dubbo", "10.1.2.1"):  ``,
		dubboProviderKey("/dubbo", "10.1.2.2"):  ``,
		"/microservices/helloworld/f3c6":        `{"id":"f3c6","name":"helloworld","version":"v1","endpoints":["grpc://10.1.3.1:9000"]}`,
		"/echo/10.1.4.1:8888":                   `{"Weight":10,"Tags":{"cluster":"a"}}`,
	} {
		registries.ZKPut(t, conn, p, data, 0)
	}
	agent := registries.StartConsul(t)
	client := consulClient(t, agent)
	for i := range 2 {
		id := fmt.Sprintf("billing-%d", i+1)
		if err := client.Agent().ServiceRegister(&api.AgentServiceRegistration{
			ID: id, Name: "billing", Address: fmt.Sprintf("10.2.0.%d", i+1), Port: 7000,
			Check: &api.AgentServiceCheck{CheckID: id, TTL: "10m", Status: api.HealthPassing},
		}); err != nil {
			t.Fatal(err)
		}
	}

	out, err := exec.Command(binary, "layouts", "-etcd", e.endpoint(), "-zookeeper", zkServer.Addr(),
		"-consul", agent.Addr(), "-max-keys", "1000", "-timeout", "20s").CombinedOutput()
	if err != nil {
		t.Fatalf("discodns layouts: %v\n%s", err, out)
	}
	t.Logf("discodns layouts:\n%s", out)
	for _, want := range []string{
		`discox +prefix /services +2 services, 3 instances`,
		`grpc +prefix /grpc +1 services, 2 instances`,
		`skydns +prefix /skydns +2 services, 3 instances, zone svc.internal.`,
		`curator +prefix /services +1 services, 2 instances`,
		`serverset +prefix /aurora/prod +1 services, 2 instances`,
		`native +prefix - +\d+ services, \d+ instances`,
		`dubbo +prefix /dubbo +1 services, 1 instances`,
		`dubbo +prefix /dubbo +1 services, 2 instances`,
		`kratos +prefix /microservices +1 services, 1 instances`,
		`discox +prefix / +1 services, 1 instances`,
	} {
		if !regexp.MustCompile(want).Match(out) {
			t.Errorf("output lacks %q", want)
		}
	}
	if strings.Contains(string(out), "/config") {
		t.Error("output names /config, which holds no layout")
	}

	i := strings.Index(string(out), "[[source]]")
	if i < 0 {
		t.Fatal("no [[source]] block")
	}
	var blocks []string
	for _, line := range strings.Split(string(out[i:]), "\n") {
		if !strings.HasPrefix(line, "#") {
			blocks = append(blocks, line)
		}
	}
	sources := strings.Join(blocks, "\n")
	if n := strings.Count(sources, "[[source]]"); n != 10 {
		t.Errorf("%d [[source]] blocks, want 10", n)
	}
	file := filepath.Join(t.TempDir(), "layouts.toml")
	if err := os.WriteFile(file, []byte("[dns]\nlisten = [\"127.0.0.1:5353\"]\nzone = \"svc.internal.\"\n\n"+sources), 0o644); err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Load(file)
	if err != nil {
		t.Fatalf("the printed blocks do not load: %v\n%s", err, sources)
	}
	if len(cfg.Sources) != 10 {
		t.Errorf("%d sources loaded, want 10", len(cfg.Sources))
	}

	d := startDiscodns(t, "[dns]\nlisten = [\"{{DNS}}\"]\nzone = \"svc.internal.\"\n\n[http]\nlisten = \"{{HTTP}}\"\n\n"+sources)
	for name, n := range map[string]int{"web": 2, "db": 1, "echo": 3, "api": 2, "one": 1, "orders": 2, "search": 2, "billing": 2,
		"org-apache-dubbo-demo-demoservice": 3, "helloworld": 1} {
		d.waitInstances(name+".svc.internal.", n)
		if r, err := dig(t, d.dns, "SRV", name+".svc.internal."); err != nil || r.status != "NOERROR" || len(r.answer) != n {
			t.Errorf("SRV %s: %v %v", name, r, err)
		}
	}
}

// dubboProviderKey is the key (etcd) or path (ZooKeeper) under group of a
// Dubbo provider of org.apache.dubbo.demo.DemoService at ip:20880, the
// provider URL encoded as Dubbo's URL.encode does.
func dubboProviderKey(group, ip string) string {
	return group + "/org.apache.dubbo.demo.DemoService/providers/" +
		url.QueryEscape("dubbo://"+ip+":20880/org.apache.dubbo.demo.DemoService?application=demo&side=provider&weight=100")
}
