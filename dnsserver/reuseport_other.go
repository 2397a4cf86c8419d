//go:build !unix

package dnsserver

import "syscall"

// reusePort does nothing where SO_REUSEPORT is unknown: a second socket
// on the address fails to bind, so dns.sockets must be 1 there.
func reusePort(network, address string, c syscall.RawConn) error { return nil }

// socketInode is 0: unknown.
func socketInode(c syscall.Conn) uint64 { return 0 }
