package cache

import (
	"fmt"
	"testing"
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
