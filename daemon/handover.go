package daemon

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"strconv"
	"syscall"
	"time"

	"github.com/cloudflare/tableflip"
	"github.com/coreos/go-systemd/v22/activation"
	sddaemon "github.com/coreos/go-systemd/v22/daemon"

	"github.com/discodns/discodns/dnsserver"
)

// Handover is how one process of discodns takes its listening sockets from
// the one before it and gives them to the next: a hot restart (SIGUSR2)
// starts a new process of the executable with every DNS and HTTP socket,
// and this process exits once that one is ready (cloudflare/tableflip);
// systemd socket activation (LISTEN_FDS) gives the sockets of
// discodns.socket. A socket in neither is bound as usual.
type Handover struct {
	upg *tableflip.Upgrader
	log *slog.Logger
	// systemd's sockets by listen address (netip.AddrPort's form); each is
	// taken once.
	udp map[string][]*net.UDPConn
	tcp map[string]net.Listener
	// names of the sockets taken from the process before, which tableflip
	// hands on by itself
	taken map[string]bool
}

// NewHandover takes the sockets systemd passed, if any, and sets up hot
// restarts. upgradeTimeout bounds how long a hot restart waits for the
// new process to be ready before it kills it. It is to be called once per
// process, before any other file is opened (systemd's descriptors start
// at 3).
func NewHandover(upgradeTimeout time.Duration, log *slog.Logger) (*Handover, error) {
	h := &Handover{log: log, udp: map[string][]*net.UDPConn{}, tcp: map[string]net.Listener{}, taken: map[string]bool{}}
	for _, f := range activation.Files(true) {
		err := h.addActivated(f)
		f.Close() // the conn or listener holds its own descriptor
		if err != nil {
			h.closeActivated()
			return nil, fmt.Errorf("systemd socket %s: %w", f.Name(), err)
		}
	}
	upg, err := tableflip.New(tableflip.Options{UpgradeTimeout: upgradeTimeout})
	if err != nil {
		h.closeActivated()
		return nil, fmt.Errorf("hot restart: %w", err)
	}
	h.upg = upg
	if upg.HasParent() {
		log.Info("hot restart: taking over the sockets of the process before", "pid", os.Getpid(), "parent", os.Getppid())
	}
	return h, nil
}

// addActivated files a socket systemd passed under its local address.
func (h *Handover) addActivated(f *os.File) error {
	typ, err := sockType(f)
	if err != nil {
		return err
	}
	switch typ {
	case syscall.SOCK_DGRAM:
		pc, err := net.FilePacketConn(f)
		if err != nil {
			return err
		}
		u, ok := pc.(*net.UDPConn)
		if !ok {
			pc.Close()
			return fmt.Errorf("a datagram socket that is not UDP (%s)", pc.LocalAddr())
		}
		key := addrKey(u.LocalAddr())
		h.udp[key] = append(h.udp[key], u)
	case syscall.SOCK_STREAM:
		l, err := net.FileListener(f)
		if err != nil {
			return fmt.Errorf("not a listening TCP socket: %w", err)
		}
		key := addrKey(l.Addr())
		if _, dup := h.tcp[key]; dup {
			l.Close()
			return fmt.Errorf("a second TCP socket on %s", key)
		}
		h.tcp[key] = l
	default:
		return fmt.Errorf("socket type %d is neither UDP nor TCP", typ)
	}
	h.log.Info("socket from systemd", "name", f.Name(), "type", map[int]string{syscall.SOCK_DGRAM: "udp", syscall.SOCK_STREAM: "tcp"}[typ])
	return nil
}

// sockType is the SO_TYPE of f's socket.
func sockType(f *os.File) (int, error) {
	rc, err := f.SyscallConn()
	if err != nil {
		return 0, err
	}
	var typ int
	var serr error
	if err := rc.Control(func(fd uintptr) { typ, serr = syscall.GetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_TYPE) }); err != nil {
		return 0, err
	}
	if serr != nil {
		return 0, fmt.Errorf("not a socket: %w", serr)
	}
	return typ, nil
}

// addrKey is the form of a listen address that config normalises to.
func addrKey(a net.Addr) string {
	if ap, err := netip.ParseAddrPort(a.String()); err == nil {
		return netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port()).String()
	}
	return a.String()
}

func (h *Handover) closeActivated() {
	for _, cs := range h.udp {
		for _, c := range cs {
			c.Close()
		}
	}
	for _, l := range h.tcp {
		l.Close()
	}
}

// udpName names the i-th UDP socket of addr among the handed over files.
func udpName(addr string, i int) string { return addr + "#" + strconv.Itoa(i) }

// UDP implements dnsserver.Inherited.
func (h *Handover) UDP(addr string, i int) (*net.UDPConn, error) {
	if cs := h.udp[addr]; len(cs) > 0 {
		if i < len(cs) {
			return cs[i], nil
		}
		return nil, nil
	}
	c, err := h.upg.Conn("udp", udpName(addr, i))
	if err != nil || c == nil {
		return nil, err
	}
	u, ok := c.(*net.UDPConn)
	if !ok {
		c.Close()
		return nil, fmt.Errorf("handed over socket %s is not UDP", udpName(addr, i))
	}
	h.taken["udp "+udpName(addr, i)] = true
	return u, nil
}

// UDPOnly implements dnsserver.Inherited: the UDP sockets systemd holds
// are the only ones, so that every query waits in one of them while
// discodns restarts.
func (h *Handover) UDPOnly(addr string) bool { return len(h.udp[addr]) > 0 }

// TCP implements dnsserver.Inherited.
func (h *Handover) TCP(addr string) (net.Listener, error) {
	if l, ok := h.tcp[addr]; ok {
		delete(h.tcp, addr)
		return l, nil
	}
	l, err := h.upg.Listener("tcp", addr)
	if l != nil {
		h.taken["tcp "+addr] = true
	}
	return l, err
}

// Listen returns the TCP listener of addr handed over, or binds one.
func (h *Handover) Listen(addr string) (net.Listener, error) {
	if h == nil {
		return net.Listen("tcp", addr)
	}
	l, err := h.TCP(addr)
	if err != nil || l != nil {
		return l, err
	}
	return net.Listen("tcp", addr)
}

// Keep makes the sockets of dns and the HTTP listener http (nil: none)
// the ones the next process gets, and closes the systemd sockets that no
// listen address took.
func (h *Handover) Keep(dns []dnsserver.Socket, http net.Listener, httpAddr string) error {
	var errs []error
	for _, s := range dns {
		name := s.Addr
		if s.Network == "udp" {
			name = udpName(s.Addr, s.Index)
		}
		if h.taken[s.Network+" "+name] {
			continue
		}
		if s.Network == "udp" {
			errs = append(errs, h.upg.AddConn("udp", name, s.Conn.(tableflip.Conn)))
		} else {
			errs = append(errs, h.upg.AddListener("tcp", name, s.Conn.(tableflip.Listener)))
		}
	}
	if http != nil && !h.taken["tcp "+httpAddr] {
		if l, ok := http.(tableflip.Listener); ok {
			errs = append(errs, h.upg.AddListener("tcp", httpAddr, l))
		}
	}
	for addr, cs := range h.udp {
		if !h.usedUDP(dns, addr) {
			h.log.Warn("systemd passed a UDP socket that dns.listen does not name; closed", "addr", addr)
			for _, c := range cs {
				c.Close()
			}
		}
	}
	for addr, l := range h.tcp {
		h.log.Warn("systemd passed a TCP socket that no listen address names; closed", "addr", addr)
		l.Close()
	}
	return errors.Join(errs...)
}

func (h *Handover) usedUDP(dns []dnsserver.Socket, addr string) bool {
	for _, s := range dns {
		if s.Network == "udp" && s.Addr == addr {
			return true
		}
	}
	return false
}

// Ready tells the process before (if any) that this one serves, so that
// it drains and exits, and tells systemd (when it watches) that this is
// the main process and it is ready.
func (h *Handover) Ready() error {
	err := h.upg.Ready()
	if _, serr := sddaemon.SdNotify(false, "READY=1\nMAINPID="+strconv.Itoa(os.Getpid())); serr != nil {
		h.log.Debug("sd_notify", "err", serr)
	}
	if err != nil {
		return fmt.Errorf("hot restart: telling the process before: %w", err)
	}
	return nil
}

// Upgrade starts a new process of the executable with the sockets, and
// waits until it is ready (nil) or has failed (the error; this process
// keeps serving).
func (h *Handover) Upgrade() error { return h.upg.Upgrade() }

// Stop ends the handover for a plain shutdown.
func (h *Handover) Stop() { h.upg.Stop() }
