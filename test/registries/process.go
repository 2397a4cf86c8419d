package registries

import (
	"bytes"
	"os"
	"os/exec"
	"sync"
	"syscall"
	"testing"
	"time"
)

// Process is a child process of a test whose output is kept for failure
// reports.
type Process struct {
	name   string
	env    []string // added to the test's environment
	cmd    *exec.Cmd
	done   chan struct{}
	mu     sync.Mutex
	output bytes.Buffer
}

// start runs argv and waits until ready reports true, failing the test if
// the process exits first or within does not suffice.
func (p *Process) start(t testing.TB, within time.Duration, ready func() bool, argv ...string) {
	t.Helper()
	p.cmd = exec.Command(argv[0], argv[1:]...)
	if p.env != nil {
		p.cmd.Env = append(os.Environ(), p.env...)
	}
	p.cmd.Stdout = &lockedWriter{&p.mu, &p.output}
	p.cmd.Stderr = p.cmd.Stdout
	if err := p.cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", p.name, err)
	}
	p.done = make(chan struct{})
	go func(cmd *exec.Cmd, done chan struct{}) { cmd.Wait(); close(done) }(p.cmd, p.done)
	deadline := time.Now().Add(within)
	for !ready() {
		select {
		case <-p.done:
			t.Fatalf("%s exited while starting:\n%s", p.name, p.Output())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s not ready within %v:\n%s", p.name, within, p.Output())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Stop kills the process and waits for it to exit.
func (p *Process) Stop() {
	if p.cmd == nil {
		return
	}
	p.cmd.Process.Signal(syscall.SIGKILL)
	<-p.done
	p.cmd = nil
}

// Signal sends sig to the running process (SIGSTOP and SIGCONT pause it).
func (p *Process) Signal(sig syscall.Signal) error { return p.cmd.Process.Signal(sig) }

// Pid is the process id.
func (p *Process) Pid() int { return p.cmd.Process.Pid }

// Output is what the process printed so far.
func (p *Process) Output() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.output.String()
}

// cleanup stops the process when the test ends, showing its output if the
// test failed.
func (p *Process) cleanup(t testing.TB) {
	t.Cleanup(func() {
		p.Stop()
		if t.Failed() {
			t.Logf("%s output:\n%s", p.name, p.Output())
		}
	})
}

type lockedWriter struct {
	mu *sync.Mutex
	w  *bytes.Buffer
}

func (l *lockedWriter) Write(b []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(b)
}

// Command is a Process that a test can kill and start again.
type Command struct {
	Process
	t      testing.TB
	within time.Duration
	ready  func() bool
	argv   []string
}

// StartCommand runs argv with env added to the environment, waits until
// ready reports true (at most within), and kills it when the test ends.
func StartCommand(t testing.TB, name string, env []string, within time.Duration, ready func() bool, argv ...string) *Command {
	t.Helper()
	c := &Command{Process: Process{name: name, env: env}, t: t, within: within, ready: ready, argv: argv}
	c.Start()
	c.cleanup(t)
	return c
}

// Start starts the command again after Stop.
func (c *Command) Start() {
	c.t.Helper()
	c.start(c.t, c.within, c.ready, c.argv...)
}
