package layouts

import (
	"bytes"
	"encoding/json"
	"slices"
	"strings"
	"testing"

	"github.com/hashicorp/consul/api"

	"github.com/discodns/discodns/config"
)

func TestFind(t *testing.T) {
	consulEntry := func(node, id, addr string, port int, status string) Entry {
		v, _ := json.Marshal(&api.ServiceEntry{Node: &api.Node{Node: node, Address: "10.9.0.1"},
			Service: &api.AgentService{ID: id, Service: "api", Address: addr, Port: port},
			Checks:  api.HealthChecks{{Status: status}}})
		return Entry{Key: "/api/" + node + "/" + id, Value: v}
	}
	for _, tc := range []struct {
		name    string
		typ     string
		entries []Entry
		want    []Finding
	}{
		{"etcd", config.TypeEtcd, []Entry{
			{"/services/web/10.0.0.1:80", nil},
			{"/services/web/10.0.0.2:80", []byte(`{"weight":5}`)},
			{"/services/db/10.0.1.1:5432", []byte(`{}`)},
			{"/grpc/echo/10.0.2.1:50051", []byte(`{"Op":0,"Addr":"10.0.2.1:50051"}`)},
			{"/grpc/echo/10.0.2.2:50051", []byte(`{"Op":1,"Addr":"10.0.2.2:50051"}`)},
			{"/skydns/internal/svc/web/a", []byte(`{"host":"10.0.3.1","port":80}`)},
			{"/skydns/internal/svc/web/b", []byte(`{"host":"10.0.3.2","port":80}`)},
			{"/skydns/internal/svc/one", []byte(`{"host":"10.0.3.3","port":80}`)},
			{"/config/feature-x", []byte(`on`)},
			{"/other/web/10.0.0.9:80", []byte(`not json`)},
			{"bare", []byte(`x`)},
		}, []Finding{
			{Type: "etcd", Format: "discox", Prefix: "/services", Services: 2, Instances: 3},
			{Type: "etcd", Format: "grpc", Prefix: "/grpc", Services: 1, Instances: 1},
			{Type: "etcd", Format: "skydns", Prefix: "/skydns", Zone: "svc.internal.", Services: 2, Instances: 3},
		}},
		{"frameworks on etcd", config.TypeEtcd, []Entry{
			{"hello.rpc/7587861827262480132", []byte(`10.0.0.5:8080`)},
			{"hello.rpc/7587861827262480133", []byte(`10.0.0.5:8080`)},
			{"/microservices/user/f3c6", []byte(`{"id":"f3c6","name":"user","endpoints":["grpc://10.0.2.5:9000"]}`)},
			{"/micro/registry/helloworld/helloworld-6c0e", []byte(`{"name":"helloworld","nodes":[{"id":"helloworld-6c0e","address":"10.0.3.5:41677"}]}`)},
			{"/rpcx", []byte(`rpcx_path`)},
			{"/rpcx/Arith", []byte(`Arith`)},
			{"/rpcx/Arith/tcp@10.0.4.5:8972", []byte(`weight=10&group=test`)},
			{"kitex/registry-etcd/echo/10.0.5.5:8888", []byte(`{"network":"tcp","address":"10.0.5.5:8888","weight":10,"tags":{"k":"v"}}`)},
			{"/services/web/10.0.0.1:80", []byte(`{"weight":5}`)},
			{"/config/feature/12", []byte(`{"enabled":true}`)},
		}, []Finding{
			{Type: "etcd", Format: "discox", Prefix: "/services", Services: 1, Instances: 1},
			{Type: "etcd", Format: "gomicro", Prefix: "/micro/registry", Services: 1, Instances: 1},
			{Type: "etcd", Format: "gozero", Prefix: "", Services: 1, Instances: 2},
			{Type: "etcd", Format: "kitex", Prefix: "kitex/registry-etcd", Services: 1, Instances: 1},
			{Type: "etcd", Format: "kratos", Prefix: "/microservices", Services: 1, Instances: 1},
			{Type: "etcd", Format: "rpcx", Prefix: "/rpcx", Services: 1, Instances: 1},
		}},
		{"zookeeper", config.TypeZooKeeper, []Entry{
			{"/services/orders/5f0c", []byte(`{"name":"orders","id":"5f0c","address":"10.1.0.1","port":8080}`)},
			{"/services/orders/6a1d", []byte(`{"name":"orders","id":"6a1d","address":"10.1.0.2","port":8080,"enabled":false}`)},
			{"/aurora/jobs/web/member_0000000001", []byte(`{"serviceEndpoint":{"host":"10.1.1.1","port":80},"status":"ALIVE"}`)},
			{"/discox/cache/10.1.2.1:6379", nil},
			{"/microservices/user/f3c6", []byte(`{"id":"f3c6","name":"user","endpoints":["grpc://10.1.3.5:9000"]}`)},
			{"/discox/cache/not-an-address", nil},
		}, []Finding{
			{Type: "zookeeper", Format: "curator", Prefix: "/services", Services: 1, Instances: 1},
			{Type: "zookeeper", Format: "discox", Prefix: "/discox", Services: 1, Instances: 1},
			{Type: "zookeeper", Format: "kratos", Prefix: "/microservices", Services: 1, Instances: 1},
			{Type: "zookeeper", Format: "serverset", Prefix: "/aurora/jobs", Services: 1, Instances: 1},
		}},
		{"consul", config.TypeConsul, []Entry{
			consulEntry("n1", "api-1", "10.2.0.1", 80, api.HealthPassing),
			consulEntry("n2", "api-2", "10.2.0.2", 80, api.HealthCritical),
		}, []Finding{{Type: "consul", Format: "native", Services: 1, Instances: 1}}},
		{"nothing", config.TypeEtcd, []Entry{{"/a/b/c", []byte("x")}}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := Find(Table(), tc.typ, tc.entries); !slices.Equal(got, tc.want) {
				t.Errorf("Find:\n got %+v\nwant %+v", got, tc.want)
			}
		})
	}
}

func TestSkyDNSZone(t *testing.T) {
	for _, tc := range []struct {
		keys []string
		want string
	}{
		{[]string{"/skydns/internal/svc/web/a", "/skydns/internal/svc/web/b"}, "svc.internal."},
		{[]string{"/skydns/internal/svc/web/a", "/skydns/internal/svc/one"}, "svc.internal."},
		{[]string{"/skydns/local/skydns/east/web/a"}, "east.skydns.local."},
		{[]string{"/skydns/internal/svc"}, "internal."},
	} {
		if got := skydnsZone("/skydns", tc.keys); got != tc.want {
			t.Errorf("skydnsZone(%q) = %q, want %q", tc.keys, got, tc.want)
		}
	}
}

func TestPrint(t *testing.T) {
	var b bytes.Buffer
	Print(&b, Registry{Type: "etcd", Address: "127.0.0.1:2379"}, []Finding{
		{Type: "etcd", Format: "skydns", Prefix: "/skydns", Zone: "svc.internal.", Services: 2, Instances: 3, Skipped: 1},
	}, 12, true)
	for _, want := range []string{
		"# etcd 127.0.0.1:2379: 12 entries read (a sample",
		"skydns     prefix /skydns",
		"2 services, 3 instances, zone svc.internal., 1 entries that do not decode",
		"[[source]]\nname = \"etcd-skydns-skydns\"\ntype = \"etcd\"\nendpoints = [\"127.0.0.1:2379\"]\nprefix = \"/skydns\"\nformat = \"skydns\"\nzone = \"svc.internal.\"\n",
	} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("output lacks %q:\n%s", want, b.String())
		}
	}
}
