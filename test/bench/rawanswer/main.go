// Command rawanswer is the limit that test/bench/cores.sh measures the DNS
// servers against: UDP sockets per core with SO_REUSEPORT, each read by
// its own goroutine, answering every query with the query's header and
// question followed by a fixed packed answer (ten A records), without
// parsing or building a message. With -batch above 1 each socket reads and
// writes up to that many datagrams per system call (recvmmsg and sendmmsg,
// through golang.org/x/net/ipv4), to measure whether batching pays.
//
//	rawanswer -addr 127.0.0.1:5300 -sockets 2 [-batch 32]
package main

import (
	"context"
	"encoding/binary"
	"flag"
	"fmt"
	"net"
	"os"
	"os/signal"
	"runtime"
	"syscall"

	"golang.org/x/net/ipv4"
	"golang.org/x/sys/unix"
)

func main() {
	addr := flag.String("addr", "127.0.0.1:5300", "UDP `address` to answer on")
	sockets := flag.Int("sockets", runtime.GOMAXPROCS(0), "sockets bound to addr with SO_REUSEPORT")
	batch := flag.Int("batch", 1, "datagrams read and written per system call")
	flag.Parse()
	lc := net.ListenConfig{Control: func(_, _ string, c syscall.RawConn) error {
		var err error
		c.Control(func(fd uintptr) { err = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_REUSEPORT, 1) })
		return err
	}}
	for range *sockets {
		pc, err := lc.ListenPacket(context.Background(), "udp", *addr)
		if err != nil {
			fmt.Fprintln(os.Stderr, "rawanswer:", err)
			os.Exit(1)
		}
		if *batch > 1 {
			go answerBatches(pc.(*net.UDPConn), *batch)
		} else {
			go answer(pc.(*net.UDPConn))
		}
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	<-ctx.Done()
}

// records is the number of A records of every answer, and answerRRs
// their packed form.
const records = 10

var answerRRs = func() []byte {
	var rrs []byte
	for i := range records {
		// A pointer to the question's name, A IN, TTL 5, 10.0.0.i.
		rrs = append(rrs, 0xc0, 12, 0, 1, 0, 1, 0, 0, 0, 5, 0, 4, 10, 0, 0, byte(i+1))
	}
	return rrs
}()

// answer answers the queries that arrive on c until it fails.
func answer(c *net.UDPConn) {
	in, out := make([]byte, 4096), make([]byte, 0, 4096+len(answerRRs))
	for {
		n, from, err := c.ReadFromUDPAddrPort(in)
		if err != nil {
			return
		}
		if out = reply(out[:0], in[:n]); out != nil {
			c.WriteToUDPAddrPort(out, from)
		}
	}
}

// answerBatches answers the queries that arrive on c, up to n per system
// call, until it fails.
func answerBatches(c *net.UDPConn, n int) {
	pc := ipv4.NewPacketConn(c)
	in, out := make([]ipv4.Message, n), make([]ipv4.Message, n)
	for i := range n {
		in[i].Buffers = [][]byte{make([]byte, 4096)}
		out[i].Buffers = [][]byte{make([]byte, 0, 4096+len(answerRRs))}
	}
	for {
		k, err := pc.ReadBatch(in, 0)
		if err != nil {
			return
		}
		w := 0
		for _, m := range in[:k] {
			if b := reply(out[w].Buffers[0][:0], m.Buffers[0][:m.N]); b != nil {
				out[w].Buffers[0], out[w].Addr = b, m.Addr
				w++
			}
		}
		for sent := 0; sent < w; {
			k, err := pc.WriteBatch(out[sent:w], 0)
			if err != nil {
				break
			}
			sent += k
		}
	}
}

// reply appends to out the answer to the query q, or returns nil when q is
// not one uncompressed question.
func reply(out, q []byte) []byte {
	end := questionEnd(q)
	if end < 0 {
		return nil
	}
	out = append(append(out, q[:end]...), answerRRs...)
	out[2] = out[2]&0x01 | 0x84 // QR, AA, RD as asked
	out[3] = 0
	binary.BigEndian.PutUint16(out[6:], records)
	binary.BigEndian.PutUint16(out[8:], 0)
	binary.BigEndian.PutUint16(out[10:], 0)
	return out
}

// questionEnd is the offset just past the one uncompressed question of
// msg, or -1.
func questionEnd(msg []byte) int {
	if len(msg) < 12 || binary.BigEndian.Uint16(msg[4:]) != 1 {
		return -1
	}
	i := 12
	for i < len(msg) && msg[i] != 0 {
		i += int(msg[i]) + 1
	}
	if i+5 > len(msg) {
		return -1
	}
	return i + 5
}
