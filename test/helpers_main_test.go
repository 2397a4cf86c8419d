package test

import (
	"fmt"
	"os"
)

// helperEnv names the helper process to run instead of the tests: the test
// binary re-runs itself with it set to one of helperProcesses' keys.
const helperEnv = "DISCODNS_TEST_HELPER"

// helperProcesses are the programs a test runs as child processes of its
// own binary (etcd that can be killed, a reference DNS server, Go's
// resolver inside a namespace). They are not tests: TestMain runs one when
// helperEnv names it and exits, so no run counts them as passed.
var helperProcesses = map[string]func() error{
	"etcd":         etcdProcess,
	"fixed-answer": fixedAnswerServer,
	"lookup-srv":   lookupSRV,
}

// helperArgv returns the environment entry and the command line that run
// the named helper process.
func helperArgv(name string) (env string, argv []string) {
	if helperProcesses[name] == nil {
		panic("no helper process " + name)
	}
	return helperEnv + "=" + name, []string{os.Args[0]}
}

// runHelperProcess runs the helper that helperEnv names, if any, and
// reports whether it did; it exits the process when the helper fails.
func runHelperProcess() bool {
	name := os.Getenv(helperEnv)
	if name == "" {
		return false
	}
	run := helperProcesses[name]
	if run == nil {
		fmt.Fprintf(os.Stderr, "%s=%q: no such helper process\n", helperEnv, name)
		os.Exit(2)
	}
	if err := run(); err != nil {
		fmt.Fprintf(os.Stderr, "helper process %s: %v\n", name, err)
		os.Exit(1)
	}
	return true
}
