package registries

import (
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/go-zookeeper/zk"
)

// ZooKeeper is a standalone ZooKeeper server from the Debian package
// `zookeeper`, with its data in a temporary directory.
type ZooKeeper struct {
	Process
	t    testing.TB
	port int
	dir  string
}

// ZooKeeperClassPath is where the Debian package puts ZooKeeper's jars and
// configuration.
const ZooKeeperClassPath = "/usr/share/java/*:/etc/zookeeper/conf"

// StartZooKeeper starts a server on a free loopback port and stops it when
// the test ends. tickTime is 500 ms; sessions may last 1 s to 30 s.
func StartZooKeeper(t testing.TB) *ZooKeeper {
	t.Helper()
	if _, err := os.Stat("/usr/share/java/zookeeper.jar"); err != nil {
		t.Fatalf("ZooKeeper is not installed (./test/run.sh installs the Debian package zookeeper): %v", err)
	}
	if _, err := exec.LookPath("java"); err != nil {
		t.Fatalf("java is required for ZooKeeper: %v", err)
	}
	z := &ZooKeeper{Process: Process{name: "zookeeper"}, t: t, port: FreePort(t), dir: t.TempDir()}
	cfg := fmt.Sprintf(`tickTime=500
minSessionTimeout=1000
maxSessionTimeout=30000
dataDir=%s
clientPort=%d
clientPortAddress=127.0.0.1
admin.enableServer=false
4lw.commands.whitelist=ruok,srvr,mntr
maxClientCnxns=0
`, filepath.Join(z.dir, "data"), z.port)
	if err := os.WriteFile(filepath.Join(z.dir, "zoo.cfg"), []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	z.Start()
	z.cleanup(t)
	return z
}

// Addr is the server's client address, host:port.
func (z *ZooKeeper) Addr() string { return fmt.Sprintf("127.0.0.1:%d", z.port) }

// Start starts the server (again, on the same data) and waits until it
// serves.
func (z *ZooKeeper) Start() {
	z.t.Helper()
	z.start(z.t, time.Minute, z.ruok, "java", "-Xmx256m", "-Dzookeeper.log.dir="+z.dir, "-Dzookeeper.root.logger=WARN,CONSOLE",
		"-cp", ZooKeeperClassPath, "org.apache.zookeeper.server.ZooKeeperServerMain", filepath.Join(z.dir, "zoo.cfg"))
}

// ruok asks the four-letter command ruok.
func (z *ZooKeeper) ruok() bool { return fourLetter(z.Addr(), "ruok") == "imok" }

// Proxy forwards TCP connections to a target and can cut them, to keep a
// client away from a server that goes on running.
type Proxy struct {
	target string
	l      net.Listener
	mu     sync.Mutex
	cut    bool
	conns  map[net.Conn]struct{}
}

// StartProxy listens on a free loopback port and forwards to target until
// the test ends.
func StartProxy(t testing.TB, target string) *Proxy {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &Proxy{target: target, l: l, conns: map[net.Conn]struct{}{}}
	go p.serve()
	t.Cleanup(func() {
		l.Close()
		p.Cut()
	})
	return p
}

// Addr is the address clients connect to.
func (p *Proxy) Addr() string { return p.l.Addr().String() }

// Cut closes every connection and refuses new ones until Restore.
func (p *Proxy) Cut() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.cut = true
	for c := range p.conns {
		c.Close()
	}
	clear(p.conns)
}

// Restore accepts connections again.
func (p *Proxy) Restore() {
	p.mu.Lock()
	p.cut = false
	p.mu.Unlock()
}

func (p *Proxy) serve() {
	for {
		c, err := p.l.Accept()
		if err != nil {
			return
		}
		go p.forward(c)
	}
}

func (p *Proxy) forward(c net.Conn) {
	p.mu.Lock()
	if p.cut {
		p.mu.Unlock()
		c.Close()
		return
	}
	p.mu.Unlock()
	up, err := net.DialTimeout("tcp", p.target, 5*time.Second)
	if err != nil {
		c.Close()
		return
	}
	p.mu.Lock()
	if p.cut {
		p.mu.Unlock()
		c.Close()
		up.Close()
		return
	}
	p.conns[c] = struct{}{}
	p.conns[up] = struct{}{}
	p.mu.Unlock()
	go func() { io.Copy(up, c); up.Close(); c.Close() }()
	io.Copy(c, up)
	c.Close()
	up.Close()
}

// ZKClient opens a ZooKeeper session to addr for the test's own reads and
// writes, closed when the test ends.
func ZKClient(t testing.TB, addr string) *zk.Conn {
	t.Helper()
	// A second client when the first gets no session in time: once, on a
	// loaded machine, a client waited 30 s for a session from a server
	// that answered ruok. What the server says of itself is logged.
	for try := 1; ; try++ {
		conn, events, err := zk.Connect([]string{addr}, 5*time.Second, zk.WithLogger(quietLogger{}))
		if err != nil {
			t.Fatal(err)
		}
		if waitSession(events, 30*time.Second) {
			t.Cleanup(conn.Close)
			return conn
		}
		conn.Close()
		t.Logf("no zookeeper session with %s in 30s (try %d); the server says: %s", addr, try, fourLetter(addr, "srvr"))
		if try == 2 {
			t.Fatalf("no zookeeper session with %s", addr)
		}
	}
}

// waitSession reports whether events bring a session within d.
func waitSession(events <-chan zk.Event, d time.Duration) bool {
	timeout := time.After(d)
	for {
		select {
		case ev := <-events:
			if ev.State == zk.StateHasSession {
				return true
			}
		case <-timeout:
			return false
		}
	}
}

// fourLetter returns a ZooKeeper server's answer to a four-letter command.
func fourLetter(addr, cmd string) string {
	conn, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		return err.Error()
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(2 * time.Second))
	conn.Write([]byte(cmd))
	b, _ := io.ReadAll(conn)
	return string(b)
}

type quietLogger struct{}

func (quietLogger) Printf(string, ...any) {}

// ZKPut creates p (and its missing parents) with data and flags, or sets
// the data of an existing p.
func ZKPut(t testing.TB, conn *zk.Conn, p, data string, flags int32) {
	t.Helper()
	var dirs []string
	for dir := path.Dir(p); dir != "/"; dir = path.Dir(dir) {
		dirs = append([]string{dir}, dirs...)
	}
	for _, dir := range dirs {
		if _, err := conn.Create(dir, nil, 0, zk.WorldACL(zk.PermAll)); err != nil && !errors.Is(err, zk.ErrNodeExists) {
			t.Fatalf("create %s: %v", dir, err)
		}
	}
	if _, err := conn.Create(p, []byte(data), flags, zk.WorldACL(zk.PermAll)); errors.Is(err, zk.ErrNodeExists) {
		if _, err := conn.Set(p, []byte(data), -1); err != nil {
			t.Fatalf("set %s: %v", p, err)
		}
	} else if err != nil {
		t.Fatalf("create %s: %v", p, err)
	}
}

// ZKDelete deletes p.
func ZKDelete(t testing.TB, conn *zk.Conn, p string) {
	t.Helper()
	if err := conn.Delete(p, -1); err != nil {
		t.Fatalf("delete %s: %v", p, err)
	}
}
