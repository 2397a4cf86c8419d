package dnsserver

import (
	"bufio"
	"os"
	"strconv"
	"strings"
)

// udpDrops sums the drops of the UDP sockets with the given inodes: the
// queries the kernel dropped because a socket's receive buffer was full,
// the last column of /proc/net/udp and /proc/net/udp6 (Linux; 0
// elsewhere).
func udpDrops(inodes map[uint64]bool) float64 {
	var sum float64
	for _, path := range []string{"/proc/net/udp", "/proc/net/udp6"} {
		f, err := os.Open(path)
		if err != nil {
			continue
		}
		sc := bufio.NewScanner(f)
		sc.Scan() // the column names
		for sc.Scan() {
			// sl local rem st tx:rx tr:when retrnsmt uid timeout inode ref pointer drops
			fields := strings.Fields(sc.Text())
			if len(fields) < 13 {
				continue
			}
			inode, err := strconv.ParseUint(fields[9], 10, 64)
			if err != nil || !inodes[inode] {
				continue
			}
			if drops, err := strconv.ParseUint(fields[12], 10, 64); err == nil {
				sum += float64(drops)
			}
		}
		f.Close()
	}
	return sum
}
