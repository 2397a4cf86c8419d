package test

import (
	"bufio"
	"fmt"
	"os/exec"
	"regexp"
	"strings"
	"testing"

	"github.com/miekg/dns"
)

// digResult is what dig printed, parsed back into records.
type digResult struct {
	status     string          // NOERROR, NXDOMAIN, ...
	flags      map[string]bool // qr, aa, tc, rd, ra
	answer     []dns.RR
	authority  []dns.RR
	additional []dns.RR
	raw        string
}

var (
	statusRe = regexp.MustCompile(`status: ([A-Z]+)`)
	flagsRe  = regexp.MustCompile(`;; flags: ([a-z ]+);`)
)

// dig runs the real dig against server ("host:port"; "" when args name
// it) and parses its output.
func dig(t *testing.T, server string, args ...string) (*digResult, error) {
	t.Helper()
	path := need(t, "dig")
	argv := []string{"+tries=1", "+time=2"}
	if server != "" {
		host, port, _ := strings.Cut(server, ":")
		argv = append(argv, "@"+host, "-p", port)
	}
	argv = append(argv, args...)
	out, err := exec.Command(path, argv...).CombinedOutput()
	if err != nil {
		return nil, fmt.Errorf("dig %s: %v\n%s", strings.Join(argv, " "), err, out)
	}
	r := &digResult{flags: map[string]bool{}, raw: string(out)}
	if m := statusRe.FindStringSubmatch(r.raw); m != nil {
		r.status = m[1]
	}
	if m := flagsRe.FindStringSubmatch(r.raw); m != nil {
		for _, f := range strings.Fields(m[1]) {
			r.flags[f] = true
		}
	}
	var section *[]dns.RR
	sc := bufio.NewScanner(strings.NewReader(r.raw))
	for sc.Scan() {
		line := sc.Text()
		switch {
		case strings.HasPrefix(line, ";; ANSWER SECTION"):
			section = &r.answer
		case strings.HasPrefix(line, ";; AUTHORITY SECTION"):
			section = &r.authority
		case strings.HasPrefix(line, ";; ADDITIONAL SECTION"):
			section = &r.additional
		case line == "" || strings.HasPrefix(line, ";"):
			if line == "" {
				section = nil
			}
		case section != nil:
			rr, err := dns.NewRR(line)
			if err != nil {
				return nil, fmt.Errorf("parse dig line %q: %v", line, err)
			}
			*section = append(*section, rr)
		}
	}
	if r.status == "" {
		return nil, fmt.Errorf("dig printed no status:\n%s", r.raw)
	}
	return r, nil
}
