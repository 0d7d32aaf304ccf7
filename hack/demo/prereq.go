package main

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
)

// checkPrerequisites returns one line per missing prerequisite, each saying
// what to do.
func checkPrerequisites(o options) []string {
	var problems []string
	if os.Geteuid() != 0 {
		problems = append(problems, "must run as root (network namespaces, eBPF): run `sudo make demo`")
	}
	if _, err := os.Stat("/sys/kernel/btf/vmlinux"); err != nil {
		problems = append(problems, "this kernel has no BTF (/sys/kernel/btf/vmlinux is missing): "+
			"boot a kernel built with CONFIG_DEBUG_INFO_BTF=y (the stock kernels of Debian 11+, Ubuntu 20.10+, RHEL 8.2+ are)")
	}
	for _, t := range []struct{ tool, fix string }{
		{"ip", "run hack/install-deps.sh demo (Debian package iproute2)"},
		{"nsenter", "run hack/install-deps.sh demo (Debian package util-linux)"},
		{"ping", "run hack/install-deps.sh demo (Debian package iputils-ping)"},
		{"sysctl", "apt-get install procps"},
	} {
		if _, err := exec.LookPath(t.tool); err != nil {
			problems = append(problems, fmt.Sprintf("%s not found: %s", t.tool, t.fix))
		}
	}
	for _, b := range []string{"nsint-agent", "nsint-collector"} {
		if _, err := os.Stat(filepath.Join(o.bin, b)); err != nil {
			problems = append(problems, fmt.Sprintf("%s not found in %s: run `make build` (or pass --bin DIR)", b, o.bin))
		}
	}
	return append(problems, portsTaken(o)...)
}

// portsTaken says which demo port is in use and how to choose another.
func portsTaken(o options) []string {
	var problems []string
	udp := fmt.Sprintf("127.0.0.1:%d", o.collectorPort)
	if c, err := net.ListenPacket("udp", udp); err != nil {
		problems = append(problems, fmt.Sprintf("udp %s is in use: set DEMO_COLLECTOR_PORT to a free port", udp))
	} else {
		c.Close()
	}
	for _, p := range []struct {
		port int
		env  string
	}{{o.webPort, "DEMO_WEB_PORT"}, {o.agentPort, "DEMO_AGENT_PORT"}} {
		addr := fmt.Sprintf("127.0.0.1:%d", p.port)
		if ln, err := net.Listen("tcp", addr); err != nil {
			problems = append(problems, fmt.Sprintf("tcp %s is in use: set %s to a free port", addr, p.env))
		} else {
			ln.Close()
		}
	}
	return problems
}
