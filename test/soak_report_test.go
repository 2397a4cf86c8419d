package test

import (
	"fmt"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

// TestSoak's DNS load: two dnsperf processes (one over UDP, one over TCP)
// in runs of soakRun that each send at most soakQPS queries a second,
// keep at most soakOutstanding of them unanswered, and count a query lost
// when no answer came within soakTimeout.
const (
	soakRun         = 5 * time.Second
	soakQPS         = 1000
	soakOutstanding = 100
	soakTimeout     = 2 * time.Second
)

// interval is a stretch of time; the zero interval is none.
type interval struct{ from, to time.Time }

// overlap returns how long a and b overlap; zero or less when they do not.
func overlap(a, b interval) time.Duration {
	if b.from.After(a.from) {
		a.from = b.from
	}
	if b.to.Before(a.to) {
		a.to = b.to
	}
	return a.to.Sub(a.from)
}

// dnsperfRun is one dnsperf run of TestSoak's load.
type dnsperfRun struct {
	proto      string
	ran        interval
	sent, lost int
	rcodes     map[string]int // responses by rcode
	// bad lists the responses (dnsperf -v lines) whose rcode is not
	// NOERROR.
	bad []string
	// err is set when dnsperf failed or its report did not parse.
	err error
}

var (
	sentRe   = regexp.MustCompile(`(?m)^\s*Queries sent:\s+(\d+)`)
	lostRe   = regexp.MustCompile(`(?m)^\s*Queries lost:\s+(\d+)`)
	rcodesRe = regexp.MustCompile(`(?m)^\s*Response codes:[ \t]*(.*)$`)
	rcodeRe  = regexp.MustCompile(`([A-Z]+) (\d+)`)
)

// parseDnsperf reads the output of a dnsperf run over proto (with -v, its
// lines per response) that ran from start to end and exited with exitErr.
func parseDnsperf(proto string, start, end time.Time, out string, exitErr error) dnsperfRun {
	r := dnsperfRun{proto: proto, ran: interval{start, end}, rcodes: map[string]int{}}
	sent, lost, rcodes := sentRe.FindStringSubmatch(out), lostRe.FindStringSubmatch(out), rcodesRe.FindStringSubmatch(out)
	switch {
	case exitErr != nil:
		r.err = fmt.Errorf("dnsperf over %s exited: %v; its output ends:\n%s", proto, exitErr, lastLines(out, 15))
		return r
	case sent == nil || lost == nil || rcodes == nil:
		r.err = fmt.Errorf("dnsperf over %s printed no statistics; its output ends:\n%s", proto, lastLines(out, 15))
		return r
	}
	r.sent, _ = strconv.Atoi(sent[1])
	r.lost, _ = strconv.Atoi(lost[1])
	for _, rc := range rcodeRe.FindAllStringSubmatch(rcodes[1], -1) {
		n, _ := strconv.Atoi(rc[2])
		r.rcodes[rc[1]] += n
	}
	for line := range strings.Lines(out) {
		// "> NOERROR name type latency"; "> T name type" is a timeout,
		// which dnsperf counts as lost.
		f := strings.Fields(line)
		if len(f) > 1 && f[0] == ">" && f[1] != "NOERROR" && f[1] != "T" {
			r.bad = append(r.bad, fmt.Sprintf("%s run started %s: %s", proto, start.Format("15:04:05.000"), strings.TrimSpace(line)))
		}
	}
	return r
}

// lastLines returns the last n lines of s.
func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	return strings.Join(lines[max(0, len(lines)-n):], "\n")
}

// faultSpan is one fault as it struck.
type faultSpan struct {
	fault string
	// struck is from its injection until the table equalled every
	// registry again and its effect was checked.
	struck   interval
	converge time.Duration // from the end of the injection until the table converged
	// down is when discodns itself was stopped or restarting; zero for
	// faults that leave it running.
	down interval
}

// chargedTo returns the index in spans of the fault that a dnsperf run's
// lost queries are charged to, or -1 when the run overlaps no fault. A
// run that overlaps the time a fault kept discodns down is charged to
// that fault: only then may queries be lost. Any other run is charged to
// the fault it overlaps longest.
func chargedTo(r dnsperfRun, spans []faultSpan) int {
	best, bestDown, bestOverlap := -1, false, time.Duration(0)
	for i, s := range spans {
		o := overlap(r.ran, s.struck)
		if o <= 0 {
			continue
		}
		down := overlap(r.ran, s.down) > 0
		if best < 0 || down && !bestDown || down == bestDown && o > bestOverlap {
			best, bestDown, bestOverlap = i, down, o
		}
	}
	return best
}

// lostBound is how many queries a dnsperf run charged to span may lose
// (a run that failed has no counts and fails the test on its own).
// A dnsperf process keeps at most soakOutstanding queries unanswered and
// sends no more until they are answered or time out after soakTimeout;
// so while discodns is stopped or restarting, a run loses at most a
// window of soakOutstanding for every soakTimeout of the downtime it
// overlaps (rounded up), and one more for the queries in flight when
// discodns stopped. A run that overlaps no downtime loses none.
func lostBound(r dnsperfRun, span faultSpan) int {
	down := overlap(r.ran, span.down)
	if down <= 0 || r.err != nil {
		return 0
	}
	return soakOutstanding * (int((down+soakTimeout-1)/soakTimeout) + 1)
}

// faultStats is the report line of one fault (or of no fault).
type faultStats struct {
	name      string
	converge  []time.Duration
	downs     []time.Duration // how long each occurrence kept discodns down
	runs      int             // dnsperf runs charged to it
	sent      int
	lost      int
	lostBy    map[string]int // lost by protocol
	bound     int            // the sum of lostBound over its runs
	stopsDisc bool
}

// byFault groups the spans by fault, in the order the faults first
// struck, and charges every dnsperf run to one of them (see chargedTo);
// the last entry, "none", holds the runs during no fault.
func byFault(spans []faultSpan, runs []dnsperfRun) []*faultStats {
	var out []*faultStats
	index := map[string]*faultStats{}
	get := func(name string) *faultStats {
		if index[name] == nil {
			index[name] = &faultStats{name: name, lostBy: map[string]int{}}
			out = append(out, index[name])
		}
		return index[name]
	}
	for _, s := range spans {
		f := get(s.fault)
		f.converge = append(f.converge, s.converge)
		f.downs = append(f.downs, s.down.to.Sub(s.down.from))
		f.stopsDisc = f.stopsDisc || s.down != interval{}
	}
	none := &faultStats{name: "none", lostBy: map[string]int{}}
	for _, r := range runs {
		f := none
		if i := chargedTo(r, spans); i >= 0 {
			f = index[spans[i].fault]
			f.bound += lostBound(r, spans[i])
		}
		f.runs++
		f.sent += r.sent
		f.lost += r.lost
		f.lostBy[r.proto] += r.lost
	}
	return append(out, none)
}

// writeFaultTable writes the per-fault lines of the soak report.
func writeFaultTable(w *strings.Builder, stats []*faultStats) {
	fmt.Fprintf(w, "%-44s %5s %12s %12s %9s %5s %8s %6s %6s\n",
		"fault", "count", "converge max", "converge p99", "down max", "runs", "sent", "lost", "bound")
	for _, f := range stats {
		conv := [2]string{"-", "-"}
		if len(f.converge) > 0 {
			conv = [2]string{
				slices.Max(f.converge).Round(time.Millisecond).String(),
				percentile(f.converge, 99).Round(time.Millisecond).String(),
			}
		}
		down := "-"
		if f.stopsDisc {
			down = slices.Max(f.downs).Round(time.Millisecond).String()
		}
		fmt.Fprintf(w, "%-44s %5d %12s %12s %9s %5d %8d %6d %6d\n",
			f.name, len(f.converge), conv[0], conv[1], down, f.runs, f.sent, f.lost, f.bound)
	}
}

// TestSoakAccounting checks the parts of TestSoak's bookkeeping that
// decide pass or fail: the reading of dnsperf's output and the charging
// of lost queries to faults.
func TestSoakAccounting(t *testing.T) {
	t0 := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	ok := `[Status] Testing complete (time limit)
> NOERROR a.svc.internal. A 0.000100
> SERVFAIL b.svc.internal. A 0.000200
> T c.svc.internal. SRV

Statistics:

  Queries sent:         10
  Queries completed:    9 (90.00%)
  Queries lost:         1 (10.00%)

  Response codes:       NOERROR 8 (88.89%), SERVFAIL 1 (11.11%)
`
	r := parseDnsperf("udp", t0, t0.Add(5*time.Second), ok, nil)
	if r.err != nil || r.sent != 10 || r.lost != 1 || r.rcodes["NOERROR"] != 8 || r.rcodes["SERVFAIL"] != 1 || len(r.bad) != 1 {
		t.Errorf("parse: %+v", r)
	}
	for what, out := range map[string]string{
		"no statistics": "[Status] Sending queries\n",
		"no rcodes":     "Queries sent: 1\nQueries lost: 0\n",
	} {
		if r := parseDnsperf("tcp", t0, t0, out, nil); r.err == nil {
			t.Errorf("%s: no error", what)
		}
	}
	if r := parseDnsperf("tcp", t0, t0, ok, fmt.Errorf("signal: aborted")); r.err == nil {
		t.Errorf("a failed dnsperf: no error")
	}

	ms := func(from, to int) interval {
		return interval{t0.Add(time.Duration(from) * time.Millisecond), t0.Add(time.Duration(to) * time.Millisecond)}
	}
	spans := []faultSpan{
		{fault: "zk", struck: ms(0, 4000)},
		{fault: "restart", struck: ms(4000, 6000), down: ms(4000, 5000)},
		{fault: "etcd", struck: ms(7000, 13000)},
	}
	for _, c := range []struct {
		from, to int // ms
		want     int
	}{
		{1000, 3000, 0},   // inside one fault
		{3000, 8000, 1},   // discodns down wins over a longer overlap
		{4999, 10000, 1},  // a millisecond of discodns down
		{5000, 10000, 2},  // discodns was back: the longest overlap
		{8000, 14000, 2},  // the longest overlap
		{12999, 20000, 2}, // a millisecond of overlap
		{13000, 20000, -1},
	} {
		if got := chargedTo(dnsperfRun{ran: ms(c.from, c.to)}, spans); got != c.want {
			t.Errorf("run %d-%d ms charged to %d, want %d", c.from, c.to, got, c.want)
		}
	}
	for _, c := range []struct {
		from, to int // ms
		want     int
	}{
		{0, 10000, 300},   // all of 2.5 s down: 2 timeouts' windows and one in flight
		{2000, 3000, 200}, // 1 s of it
		{4000, 9000, 0},   // after discodns was back
	} {
		span := faultSpan{struck: ms(1000, 5000), down: ms(1000, 3500)}
		if got := lostBound(dnsperfRun{ran: ms(c.from, c.to)}, span); got != c.want {
			t.Errorf("run %d-%d ms may lose %d, want %d", c.from, c.to, got, c.want)
		}
	}
	stats := byFault(spans, []dnsperfRun{{proto: "tcp", ran: ms(3000, 8000), sent: 100, lost: 40}, {ran: ms(14000, 15000), sent: 5}})
	if len(stats) != 4 || stats[1].lost != 40 || stats[1].lostBy["tcp"] != 40 || stats[3].name != "none" || stats[3].runs != 1 || stats[1].bound != 100*(1+1) || stats[0].bound != 0 {
		t.Errorf("by fault: %+v %+v %+v %+v", *stats[0], *stats[1], *stats[2], *stats[3])
	}
}
