package test

import (
	"fmt"
	"math/rand/v2"
	"path"
	"sync"
	"testing"
	"time"

	"github.com/go-zookeeper/zk"
	"github.com/miekg/dns"

	"github.com/discodns/discodns/test/registries"
)

const zkBenchServices, zkBenchInstances = 1000, 5

// zkBenchTree starts ZooKeeper with zkBenchServices services of
// zkBenchInstances discox instances under /services.
func zkBenchTree(b *testing.B) (*registries.ZooKeeper, *zk.Conn) {
	b.Helper()
	server := registries.StartZooKeeper(b)
	cli := registries.ZKClient(b, server.Addr())
	registries.ZKPut(b, cli, "/services", "", 0)
	var wg sync.WaitGroup
	work := make(chan int)
	for range 16 {
		wg.Go(func() {
			for s := range work {
				registries.ZKPut(b, cli, fmt.Sprintf("/services/svc-%d", s), "", 0)
				for i := range zkBenchInstances {
					registries.ZKPut(b, cli, zkInstancePath(s, i), `{"weight":1}`, 0)
				}
			}
		})
	}
	for s := range zkBenchServices {
		work <- s
	}
	close(work)
	wg.Wait()
	return server, cli
}

func zkInstancePath(s, i int) string {
	return fmt.Sprintf("/services/svc-%d/10.%d.%d.%d:%d", s, i, s/250, s%250+1, 8000+i)
}

// listTree reads the whole tree as the source does (children, then data,
// 16 requests in flight): the reference for the initial list.
func listTree(b *testing.B, cli *zk.Conn) int {
	services, _, err := cli.Children("/services")
	if err != nil {
		b.Fatal(err)
	}
	var mu sync.Mutex
	n := 0
	var wg sync.WaitGroup
	work := make(chan string)
	for range 16 {
		wg.Go(func() {
			for svc := range work {
				nodes, _, err := cli.Children(path.Join("/services", svc))
				if err != nil {
					b.Error(err)
					continue
				}
				for _, node := range nodes {
					if _, _, err := cli.Get(path.Join("/services", svc, node)); err != nil {
						b.Error(err)
					}
				}
				mu.Lock()
				n += len(nodes)
				mu.Unlock()
			}
		})
	}
	for _, svc := range services {
		work <- svc
	}
	close(work)
	wg.Wait()
	return n
}

const zkBenchConfig = `
[dns]
listen = ["{{DNS}}"]
zone = "svc.internal."

[http]
listen = "{{HTTP}}"

[[source]]
name = "zk"
type = "zookeeper"
servers = [%q]
prefix = "/services"
`

// BenchmarkZooKeeperInitialList measures the time from starting discodns
// on 1,000 services of 5 instances to /readyz (every instance listed,
// watched and served). The reference, measured in the same run, is a bare
// client reading the same tree with the same concurrency.
//
//	go test ./test -run '^$' -bench ZooKeeperInitialList -benchtime 10x
func BenchmarkZooKeeperInitialList(b *testing.B) {
	server, cli := zkBenchTree(b)
	var took, ref []time.Duration
	for b.Loop() {
		start := time.Now()
		if n := listTree(b, cli); n != zkBenchServices*zkBenchInstances {
			b.Fatalf("reference read %d instances", n)
		}
		ref = append(ref, time.Since(start))

		start = time.Now()
		d := launchDiscodns(b, fmt.Sprintf(zkBenchConfig, server.Addr()))
		for {
			if code, _, err := d.get("/readyz"); err == nil && code == 200 {
				break
			}
			if time.Since(start) > time.Minute {
				b.Fatal("not ready within a minute")
			}
			time.Sleep(time.Millisecond)
		}
		took = append(took, time.Since(start))
		d.cmd.Process.Kill()
		<-d.done
	}
	b.ReportMetric(float64(percentile(took, 50).Milliseconds()), "ready-p50-ms")
	b.ReportMetric(float64(percentile(ref, 50).Milliseconds()), "bare-read-p50-ms")
	b.ReportMetric(float64(percentile(took, 50))/float64(percentile(ref, 50)), "ratio_to_bare_read")
}

// BenchmarkZooKeeperChange measures the time from changing an instance's
// data (its weight) to the first SRV answer that shows it, with 1,000
// services of 5 instances watched. The reference, measured in the same
// run, is a data watch of a bare client on the same node firing.
//
//	go test ./test -run '^$' -bench ZooKeeperChange -benchtime 200x
func BenchmarkZooKeeperChange(b *testing.B) {
	server, cli := zkBenchTree(b)
	watcher := registries.ZKClient(b, server.Addr())
	d := startDiscodns(b, fmt.Sprintf(zkBenchConfig, server.Addr()))
	weightOf := func(s, i int) int {
		m, err := d.exchange(fmt.Sprintf("_svc-%d._tcp.svc.internal.", s), dns.TypeSRV, "tcp")
		if err != nil {
			return -1
		}
		for _, rr := range m.Answer {
			if srv := rr.(*dns.SRV); srv.Port == uint16(8000+i) {
				return int(srv.Weight)
			}
		}
		return -1
	}
	var took, ref []time.Duration
	for n := 0; b.Loop(); n++ {
		s, i := rand.IntN(zkBenchServices), rand.IntN(zkBenchInstances)
		weight := 2 + n%1000
		p := zkInstancePath(s, i)
		_, _, fired, err := watcher.GetW(p)
		if err != nil {
			b.Fatal(err)
		}
		start := time.Now()
		registries.ZKPut(b, cli, p, fmt.Sprintf(`{"weight":%d}`, weight), 0)
		for weightOf(s, i) != weight {
			if time.Since(start) > 10*time.Second {
				b.Fatalf("%s: weight %d not answered within 10 s", p, weight)
			}
		}
		took = append(took, time.Since(start))
		<-fired
		// The watch fired before the DNS answer showed; its time is the
		// floor. Measure it on its own node to be exact.
		ref = append(ref, watchLatency(b, cli, watcher, zkInstancePath((s+1)%zkBenchServices, i)))
	}
	b.ReportMetric(float64(percentile(took, 50).Microseconds())/1000, "p50-ms")
	b.ReportMetric(float64(percentile(took, 99).Microseconds())/1000, "p99-ms")
	b.ReportMetric(float64(percentile(ref, 50).Microseconds())/1000, "watch-p50-ms")
	b.ReportMetric(float64(percentile(took, 50))/float64(percentile(ref, 50)), "ratio_to_watch")
}

// watchLatency sets p's data through cli and returns how long a data watch
// of watcher took to fire.
func watchLatency(b *testing.B, cli, watcher *zk.Conn, p string) time.Duration {
	data, _, fired, err := watcher.GetW(p)
	if err != nil {
		b.Fatal(err)
	}
	start := time.Now()
	if _, err := cli.Set(p, data, -1); err != nil {
		b.Fatal(err)
	}
	<-fired
	return time.Since(start)
}
