package cache

import (
	"context"
	"fmt"
	"runtime"
	"testing"
	"time"
)

// benchTable returns a table with services services of perService
// instances from one source.
func benchTable(b *testing.B, services, perService int) *Table {
	tb := newTable(&testing.T{}, "etcd")
	insts := make([]Instance, 0, services*perService)
	for s := range services {
		for i := range perService {
			insts = append(insts, inst(fmt.Sprintf("svc-%d", s), fmt.Sprintf("i%d", i), fmt.Sprintf("10.%d.%d.%d", s/65536, s/256%256, s%256), uint16(8000+i)))
		}
	}
	tb.Replace("etcd", insts)
	return tb
}

// BenchmarkPutOneInstance changes one instance of one service in tables of
// 100 and 10,000 services of 10 instances: the table's part of a change
// (copy the changed shard, publish a snapshot), which should follow the
// service, not the table. dnsserver's BenchmarkChangeOneInstance measures
// the whole path, up to answers that show the change.
//
//	go test ./cache -run '^$' -bench PutOneInstance
func BenchmarkPutOneInstance(b *testing.B) {
	for _, services := range []int{100, 10000} {
		b.Run(fmt.Sprintf("services=%d", services), func(b *testing.B) {
			tb := benchTable(b, services, 10)
			b.ReportAllocs()
			for n := 0; b.Loop(); n++ {
				in := inst("svc-7", "i3", "10.0.0.7", uint16(9000+n%1000))
				tb.Put("etcd", in)
			}
		})
	}
}

// BenchmarkPutIntoLargeService moves instances of one service of 1,000
// and of 20,000 instances to a new port, one Put each, and publishes them
// all (Sync), with Run publishing as the daemon has it, and with each Put
// publishing (no Run). ns/op is per Put; x-small is that time against the
// same Puts into a service of 10 instances, measured in the same run:
// batched, it should not grow with the size; publishing each Put copies
// the service, so it grows with it.
//
//	go test ./cache -run '^$' -bench PutIntoLargeService
func BenchmarkPutIntoLargeService(b *testing.B) {
	// puts times b.N Puts into a service of size instances, and their
	// publication.
	puts := func(b *testing.B, size int, batched, timed bool) time.Duration {
		b.StopTimer()
		tb := benchTable(b, 1, size)
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		if batched {
			go tb.Run(ctx)
		}
		if timed {
			b.StartTimer()
		}
		start := time.Now()
		for n := range b.N {
			i := n % size
			tb.Put("etcd", inst("svc-0", fmt.Sprintf("i%d", i), fmt.Sprintf("10.%d.%d.%d", i/65536, i/256%256, i%256), uint16(9000+n/size%1000))) // a new port each time
		}
		if err := tb.Sync(ctx); err != nil {
			b.Fatal(err)
		}
		took := time.Since(start)
		b.StopTimer()
		return took
	}
	for _, batched := range []bool{true, false} {
		for _, size := range []int{1000, 20000} {
			b.Run(fmt.Sprintf("batched=%v/instances=%d", batched, size), func(b *testing.B) {
				small := puts(b, 10, batched, false)
				large := puts(b, size, batched, true)
				b.ReportMetric(float64(large)/float64(small), "x-small")
			})
		}
	}
}

// BenchmarkEndpointSetPut moves an instance of a service of 1,000 and of
// 20,000 instances to a new port: what a write costs the table before
// publication, which should not grow with the service. x-small is against
// a service of 10, in the same run.
//
//	go test ./cache -run '^$' -bench EndpointSetPut
func BenchmarkEndpointSetPut(b *testing.B) {
	puts := func(b *testing.B, size int) time.Duration {
		s := newEndpointSet(0)
		for i := range size {
			s.put(&Instance{Source: "etcd", ID: fmt.Sprint("i", i), Address: fmt.Sprintf("10.%d.%d.%d", i/65536, i/256%256, i%256), Port: 8000})
		}
		start := time.Now()
		for n := range b.N {
			i := n % size
			s.put(&Instance{Source: "etcd", ID: fmt.Sprint("i", i), Address: fmt.Sprintf("10.%d.%d.%d", i/65536, i/256%256, i%256), Port: uint16(9000 + n/size%1000)})
			if s.changed.len() > 1000 {
				s.changed = smallMap[string, struct{}]{} // as publication takes them
			}
		}
		return time.Since(start)
	}
	for _, size := range []int{1000, 20000} {
		b.Run(fmt.Sprintf("instances=%d", size), func(b *testing.B) {
			b.StopTimer()
			small := puts(b, 10)
			b.StartTimer()
			large := puts(b, size)
			b.ReportMetric(float64(large)/float64(small), "x-small")
		})
	}
}

// BenchmarkTableBytes reports the live heap a table of 100,000 instances
// holds per instance, published, in services of 1, 3 and 10 instances:
// most services are small, so what a service costs beyond its instances
// counts.
//
//	go test ./cache -run '^$' -bench TableBytes -benchtime 1x
func BenchmarkTableBytes(b *testing.B) {
	const instances = 100000
	for _, per := range []int{1, 3, 10} {
		b.Run(fmt.Sprintf("per-service=%d", per), func(b *testing.B) {
			var perInstance float64
			for b.Loop() {
				var before, after runtime.MemStats
				runtime.GC()
				runtime.ReadMemStats(&before)
				tb := benchTable(b, instances/per, per)
				runtime.GC()
				runtime.ReadMemStats(&after)
				perInstance = float64(after.HeapAlloc-before.HeapAlloc) / instances
				runtime.KeepAlive(tb)
			}
			b.ReportMetric(perInstance, "bytes/instance")
		})
	}
}
