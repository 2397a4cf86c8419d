package test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/consul/api"
	"github.com/miekg/dns"

	"github.com/discodns/discodns/test/registries"
)

// BenchmarkConsulHealthChange measures the time from a health check change
// in Consul (2,000 services of 3 instances on one agent, discodns holding at
// most 8 connections to it) to the first DNS answer that shows it.
//
// The reference, measured in the same run, is a blocking query of its own
// on that one service (/v1/health/service/<name>?index=N), which is what a
// client holding one connection per service would see: ratio_to_blocking
// is discodns's median over the reference's.
//
//	go test ./test -run '^$' -bench ConsulHealthChange -benchtime 100x
func BenchmarkConsulHealthChange(b *testing.B) {
	_, client, answers := consulBench(b)
	var viaDNS, viaBlocking []time.Duration
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		s := rand.IntN(benchServices)
		status, want := api.HealthCritical, benchPerService-1
		if answers(s) != benchPerService {
			b.Fatalf("svc-%d has %d answers before change %d, want %d", s, answers(s), i, benchPerService)
		}
		// The reference: a blocking query on this service from its
		// current index.
		_, meta, err := client.Health().Service(fmt.Sprintf("svc-%d", s), "", true, nil)
		if err != nil {
			b.Fatal(err)
		}
		blocked := make(chan time.Time, 1)
		go func() {
			q := (&api.QueryOptions{WaitIndex: meta.LastIndex, WaitTime: 10 * time.Second}).WithContext(context.Background())
			client.Health().Service(fmt.Sprintf("svc-%d", s), "", true, q)
			blocked <- time.Now()
		}()
		time.Sleep(5 * time.Millisecond) // let the blocking query reach the agent

		start := time.Now()
		setCheck(b, client, s, 1, status)
		for answers(s) != want {
			if time.Since(start) > 10*time.Second {
				b.Fatalf("svc-%d: the change did not reach DNS within 10 s", s)
			}
		}
		viaDNS = append(viaDNS, time.Since(start))
		viaBlocking = append(viaBlocking, (<-blocked).Sub(start))

		b.StopTimer()
		setCheck(b, client, s, 1, api.HealthPassing)
		for answers(s) != benchPerService {
			time.Sleep(time.Millisecond)
		}
		b.StartTimer()
	}
	b.StopTimer()
	dnsP50, dnsP99 := percentile(viaDNS, 50), percentile(viaDNS, 99)
	refP50 := percentile(viaBlocking, 50)
	b.ReportMetric(float64(dnsP50.Microseconds())/1000, "p50-ms")
	b.ReportMetric(float64(dnsP99.Microseconds())/1000, "p99-ms")
	b.ReportMetric(float64(refP50.Microseconds())/1000, "blocking-p50-ms")
	if refP50 > 0 {
		b.ReportMetric(float64(dnsP50)/float64(refP50), "ratio_to_blocking")
	}
}

const benchServices, benchPerService = 2000, 3

// consulBench starts an agent with benchServices services of
// benchPerService instances and discodns on it, and returns a function
// counting the A answers of service s.
func consulBench(b *testing.B) (*discodns, *api.Client, func(s int) int) {
	b.Helper()
	agent := registries.StartConsul(b)
	client := consulClient(b, agent)
	registerMany(b, client, benchServices, benchPerService)
	d := startDiscodns(b, consulConfig(agent.Addr(), "max_connections = 8"))
	return d, client, func(s int) int {
		m, err := d.exchange(fmt.Sprintf("svc-%d.svc.internal.", s), dns.TypeA, "udp")
		if err != nil {
			return -1
		}
		return len(m.Answer)
	}
}

// BenchmarkConsulRegistration measures the time from registering one more
// instance of a service (no check: passing) to the DNS answer that shows
// it. Such a change shows only in the index of the service list; with 5 of
// the 2,000 services watched, the source finds the changed one by a scan of
// the 4 nodes' services (5 requests) and fetches only it (see
// consul.Source); it read every unwatched service before, at rate_limit.
//
//	go test ./test -run '^$' -bench ConsulRegistration -benchtime 100x
func BenchmarkConsulRegistration(b *testing.B) {
	_, client, answers := consulBench(b)
	var took []time.Duration
	txn := func(verb api.ServiceOp, s, i int) {
		op := &api.TxnOp{Service: &api.ServiceTxnOp{Verb: verb, Node: "node-0", Service: api.AgentService{
			ID: fmt.Sprintf("extra-%d-%d", s, i), Service: fmt.Sprintf("svc-%d", s), Port: 9999,
			Address: fmt.Sprintf("10.99.%d.%d", i/250, i%250+1),
		}}}
		if ok, resp, _, err := client.Txn().Txn(api.TxnOps{op}, nil); err != nil || !ok {
			b.Fatalf("txn: %v %v", err, resp)
		}
	}
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		s := rand.IntN(benchServices)
		start := time.Now()
		txn(api.ServiceSet, s, i)
		for answers(s) != benchPerService+1 {
			if time.Since(start) > 30*time.Second {
				b.Fatalf("svc-%d: the registration did not reach DNS within 30 s", s)
			}
		}
		took = append(took, time.Since(start))
		b.StopTimer()
		txn(api.ServiceDelete, s, i)
		for answers(s) != benchPerService {
			time.Sleep(time.Millisecond)
		}
		b.StartTimer()
	}
	b.StopTimer()
	b.ReportMetric(float64(percentile(took, 50).Microseconds())/1000, "p50-ms")
	b.ReportMetric(float64(percentile(took, 99).Microseconds())/1000, "p99-ms")
}

// percentile returns the p-th percentile of ds (nearest rank).
func percentile(ds []time.Duration, p int) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := slices.Sorted(slices.Values(ds))
	i := (p*len(s) + 99) / 100
	return s[max(i-1, 0)]
}

// BenchmarkConsulViewSweep measures what a discodns pays to find a changed
// unwatched service without knowing which: a read of every one of 2,000
// services from the agent's streaming views (?cached: no server request),
// on 1 and on 4 connections, against the reference of listing every node's
// services (1 + nodes server requests; 4 nodes here).
//
//	go test ./test -run '^$' -bench ConsulViewSweep -benchtime 5x
func BenchmarkConsulViewSweep(b *testing.B) {
	agent := registries.StartConsul(b)
	client := consulClient(b, agent)
	registerMany(b, client, benchServices, benchPerService)
	names := make([]string, benchServices)
	for i := range names {
		names[i] = fmt.Sprintf("svc-%d", i)
	}
	sweep := func(conns int) time.Duration {
		start := time.Now()
		next := make(chan string)
		var wg sync.WaitGroup
		for range conns {
			wg.Go(func() {
				for name := range next {
					q := (&api.QueryOptions{UseCache: true, AllowStale: true}).WithContext(context.Background())
					if _, _, err := client.Health().Service(name, "", false, q); err != nil {
						b.Error(err)
					}
				}
			})
		}
		for _, n := range names {
			next <- n
		}
		close(next)
		wg.Wait()
		return time.Since(start)
	}
	scan := func() time.Duration {
		start := time.Now()
		nodes, _, err := client.Catalog().Nodes(nil)
		if err != nil {
			b.Fatal(err)
		}
		for _, n := range nodes {
			if _, _, err := client.Catalog().NodeServiceList(n.Node, nil); err != nil {
				b.Fatal(err)
			}
		}
		return time.Since(start)
	}
	sweep(4) // the agent makes its views
	for _, conns := range []int{1, 4} {
		b.Run(fmt.Sprintf("conns=%d", conns), func(b *testing.B) {
			var took, ref time.Duration
			for b.Loop() {
				took += sweep(conns)
				ref += scan()
			}
			b.ReportMetric(float64(took.Microseconds())/1000/float64(b.N), "sweep-ms")
			b.ReportMetric(float64(ref.Microseconds())/1000/float64(b.N), "nodescan-ms")
			b.ReportMetric(float64(took)/float64(ref), "ratio_to_nodescan")
		})
	}
}
