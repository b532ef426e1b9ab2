package faults

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	mathrand "math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/mozpool/mozpool/api"
	"github.com/mozpool/mozpool/client"
	"github.com/mozpool/mozpool/daemon/daemontest"
	"github.com/mozpool/mozpool/sim"
)

// Names: every network namespace of a run is nsPrefix<pid>-<role>, every
// link in the root namespace linkPrefix<pid><suffix> (at most 15
// characters), so that leftovers of a run that died are recognized by the
// next one and removed once their process is gone.
const (
	nsPrefix   = "mozpool-faults-"
	linkPrefix = "mzf"
)

// Ports inside each node's namespace (the namespace is the run's own).
const (
	httpPort   = 8080
	raftPort   = 8300
	gossipPort = 8301
	tftpPort   = 6969
	syslogPort = 5514
)

// The lab's namespace holds the simulator: its boards' and relay boards'
// addresses are in 10.N.128.0/17, local to it through its loopback device.
const labHost = 100

// lab is one run: a bridge in the root namespace (10.N.0.254/24), a
// namespace per node (10.N.0.i), one for the simulated lab (10.N.0.100),
// and delaying TCP proxies between nodes.
type lab struct {
	t      *testing.T
	pid    int
	net    int // N
	dir    string
	bin    string
	token  string
	bridge string
	nodes  []*node
	proxy  *proxies

	simNS   string
	simCmd  *exec.Cmd
	simDone chan struct{}
	devices int
	round   int // scenarios run so far
}

type node struct {
	i       int
	name    string
	ns      string
	veth    string // root side of the node's veth pair
	ip      string
	url     string
	data    string
	logPath string

	mu     sync.Mutex
	cmd    *exec.Cmd
	exited chan struct{}
}

func (l *lab) addr(host int) string { return fmt.Sprintf("10.%d.0.%d", l.net, host) }

// sh runs a command and fails the test on error.
func (l *lab) sh(args ...string) string {
	l.t.Helper()
	out, err := exec.Command(args[0], args[1:]...).CombinedOutput()
	require.NoError(l.t, err, "%s: %s", strings.Join(args, " "), out)
	return string(out)
}

// try runs a command whose failure does not matter (cleanup).
func try(args ...string) { _ = exec.Command(args[0], args[1:]...).Run() }

// removeLeftovers deletes the namespaces and links of earlier runs whose
// process is gone (a run killed before its cleanup), and the processes
// still running in those namespaces.
func removeLeftovers() {
	alive := func(pid string) bool {
		n, err := strconv.Atoi(pid)
		if err != nil || n == os.Getpid() {
			return n == os.Getpid()
		}
		return syscall.Kill(n, 0) == nil
	}
	out, _ := exec.Command("ip", "netns", "list").Output()
	nsRE := regexp.MustCompile(`^` + nsPrefix + `(\d+)-\S+`)
	for _, line := range strings.Split(string(out), "\n") {
		m := nsRE.FindStringSubmatch(strings.TrimSpace(line))
		if m == nil || alive(m[1]) {
			continue
		}
		name := strings.Fields(m[0])[0]
		pids, _ := exec.Command("ip", "netns", "pids", name).Output()
		for _, p := range strings.Fields(string(pids)) {
			if n, err := strconv.Atoi(p); err == nil {
				_ = syscall.Kill(n, syscall.SIGKILL)
			}
		}
		try("ip", "netns", "del", name)
	}
	out, _ = exec.Command("ip", "-o", "link", "show").Output()
	linkRE := regexp.MustCompile(`^\d+: (` + linkPrefix + `(\d+)[a-z][a-z0-9]*)[@:]`)
	for _, line := range strings.Split(string(out), "\n") {
		if m := linkRE.FindStringSubmatch(line); m != nil && !alive(m[2]) {
			try("ip", "link", "del", m[1])
		}
	}
}

// freeNet picks N such that no route of the root namespace is in 10.N/16.
func freeNet(t *testing.T) int {
	out, err := exec.Command("ip", "-4", "route", "show", "table", "all").Output()
	require.NoError(t, err)
	for range 100 {
		n := 100 + mathrand.IntN(150)
		if !strings.Contains(string(out), fmt.Sprintf("10.%d.", n)) {
			return n
		}
	}
	t.Fatal("no free 10.N.0.0/16 network")
	return 0
}

// newLab builds the binaries and the network, starts three nodes and the
// simulated lab with boardsPerRack boards per node, and loads its
// inventory. Everything is removed when the test ends.
func newLab(t *testing.T, boardsPerRack int, timeScale float64) *lab {
	removeLeftovers()
	b := make([]byte, 16)
	_, _ = rand.Read(b)
	l := &lab{t: t, pid: os.Getpid(), net: freeNet(t), dir: t.TempDir(), token: hex.EncodeToString(b)}
	l.bin = filepath.Join(l.dir, "bin")
	root, err := filepath.Abs("../..")
	require.NoError(t, err)
	build := exec.Command("go", "build", "-o", l.bin+"/", "./cmd/mozpoold", "./cmd/mozpool-sim")
	build.Dir = root
	out, err := build.CombinedOutput()
	require.NoError(t, err, "build: %s", out)

	t.Cleanup(l.teardown)
	l.bridge = fmt.Sprintf("%s%db", linkPrefix, l.pid)
	l.sh("ip", "link", "add", l.bridge, "type", "bridge")
	l.sh("ip", "addr", "add", l.addr(254)+"/24", "dev", l.bridge)
	l.sh("ip", "link", "set", l.bridge, "up")
	addNS := func(role string, host int) (ns, veth string) {
		ns = fmt.Sprintf("%s%d-%s", nsPrefix, l.pid, role)
		veth = fmt.Sprintf("%s%d%s", linkPrefix, l.pid, role)
		l.sh("ip", "netns", "add", ns)
		l.sh("ip", "link", "add", veth, "type", "veth", "peer", "name", "eth0", "netns", ns)
		l.sh("ip", "link", "set", veth, "master", l.bridge)
		l.sh("ip", "link", "set", veth, "up")
		l.sh("ip", "-n", ns, "link", "set", "lo", "up")
		l.sh("ip", "-n", ns, "addr", "add", l.addr(host)+"/24", "dev", "eth0")
		l.sh("ip", "-n", ns, "link", "set", "eth0", "up")
		return ns, veth
	}
	l.simNS, _ = addNS("lab", labHost)
	l.sh("ip", "-n", l.simNS, "addr", "add", fmt.Sprintf("10.%d.128.1/17", l.net), "dev", "lo")
	for i := 1; i <= 3; i++ {
		n := &node{i: i, name: daemontest.NodeName(i), ip: l.addr(i)}
		n.ns, n.veth = addNS(fmt.Sprintf("n%d", i), i)
		n.url = fmt.Sprintf("http://%s:%d", n.ip, httpPort)
		n.data = filepath.Join(l.dir, n.name)
		n.logPath = filepath.Join(l.dir, n.name+".log")
		require.NoError(t, os.MkdirAll(n.data, 0o755))
		l.sh("ip", "-n", n.ns, "route", "add", fmt.Sprintf("10.%d.128.0/17", l.net), "via", l.addr(labHost))
		l.nodes = append(l.nodes, n)
	}
	l.proxy = startProxies(t, l)

	for _, n := range l.nodes {
		l.start(n, timeScale)
		if n.i == 1 {
			l.waitHealthy(n, 60*time.Second)
		}
	}
	for _, n := range l.nodes {
		l.waitHealthy(n, 60*time.Second)
	}
	l.startSim(boardsPerRack, timeScale)
	return l
}

// start runs node n's mozpoold in its namespace (node 1 founds the cluster
// on first start, the others join through it).
func (l *lab) start(n *node, timeScale float64) {
	l.t.Helper()
	hp := func(p int) string { return fmt.Sprintf("%s:%d", n.ip, p) }
	args := []string{"netns", "exec", n.ns, filepath.Join(l.bin, "mozpoold"),
		"-data", n.data, "-name", n.name, "-rack", fmt.Sprintf("rack%d", n.i),
		"-http", hp(httpPort), "-raft", hp(raftPort), "-gossip", hp(gossipPort),
		"-tftp", hp(tftpPort), "-syslog", hp(syslogPort), "-ping-mode", "tcp",
		"-time-scale", strconv.FormatFloat(timeScale, 'f', -1, 64), "-token", l.token,
		// Plain HTTP: the suite is about the network misbehaving; TLS
		// on every port is exercised by the in-process clusters.
		"-plain-http"}
	// MOZPOOL_FAULTS_RAFT_TIMEOUT runs the nodes with another
	// -raft-timeout than the default, to see what it changes.
	if d := os.Getenv("MOZPOOL_FAULTS_RAFT_TIMEOUT"); d != "" {
		args = append(args, "-raft-timeout", d)
	}
	if n.i == 1 {
		args = append(args, "-bootstrap")
	} else {
		args = append(args, "-join", l.nodes[0].url)
	}
	f, err := os.OpenFile(n.logPath, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	require.NoError(l.t, err)
	cmd := exec.Command("ip", args...)
	cmd.Stdout, cmd.Stderr = f, f
	// The node dies with the test process, whatever ends it.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	require.NoError(l.t, cmd.Start())
	exited := make(chan struct{})
	go func() { _ = cmd.Wait(); f.Close(); close(exited) }()
	n.mu.Lock()
	n.cmd, n.exited = cmd, exited
	n.mu.Unlock()
}

func (n *node) running() bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.cmd == nil {
		return false
	}
	select {
	case <-n.exited:
		return false
	default:
		return true
	}
}

func (n *node) signal(sig syscall.Signal) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.cmd != nil {
		_ = n.cmd.Process.Signal(sig)
	}
}

// kill SIGKILLs node n and waits for its process to end.
func (l *lab) kill(n *node) {
	n.signal(syscall.SIGKILL)
	n.mu.Lock()
	exited := n.exited
	n.mu.Unlock()
	if exited != nil {
		select {
		case <-exited:
		case <-time.After(30 * time.Second):
			l.t.Fatalf("%s did not exit after SIGKILL", n.name)
		}
	}
}

// waitHealthy polls n's health route until it answers OK: the node knows a
// leader and has caught up.
func (l *lab) waitHealthy(n *node, within time.Duration) {
	l.t.Helper()
	c := client.New(n.url, client.WithTimeout(2*time.Second), client.WithRetries(0))
	require.Eventually(l.t, func() bool {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		return c.Health(ctx) == nil
	}, within, 100*time.Millisecond, "%s not healthy; see %s", n.name, n.logPath)
}

func (l *lab) urls() []string {
	var out []string
	for _, n := range l.nodes {
		out = append(out, n.url)
	}
	return out
}

// startSim generates the inventory, starts mozpool-sim in the lab's
// namespace and syncs the inventory it writes (with its relay ports).
func (l *lab) startSim(boardsPerRack int, timeScale float64) {
	t := l.t
	inv, err := sim.GenerateInventory(sim.GenerateOptions{
		Servers:         []string{l.nodes[0].name, l.nodes[1].name, l.nodes[2].name},
		BoardsPerServer: boardsPerRack, BoardNet: 1, RelayNet: 2, RelayPort: 0,
	})
	require.NoError(t, err)
	l.devices = len(inv.Devices)
	// The generator's loopback addresses, moved into the lab's network:
	// boards 127.1.x.y -> 10.N.(128+x).y, relays 127.2.r.k -> 10.N.(200+r).k.
	b, err := json.Marshal(inv)
	require.NoError(t, err)
	re := regexp.MustCompile(`127\.([12])\.(\d+)\.(\d+)`)
	b = re.ReplaceAllFunc(b, func(m []byte) []byte {
		p := re.FindSubmatch(m)
		x, _ := strconv.Atoi(string(p[2]))
		base := 128
		if string(p[1]) == "2" {
			base = 200
		}
		return []byte(fmt.Sprintf("10.%d.%d.%s", l.net, base+x, p[3]))
	})
	invPath := filepath.Join(l.dir, "lab.json")
	outPath := filepath.Join(l.dir, "lab-bound.json")
	require.NoError(t, os.WriteFile(invPath, b, 0o644))
	recovery := max(20*time.Millisecond, time.Duration(float64(time.Second)*timeScale))
	logf, err := os.Create(filepath.Join(l.dir, "sim.log"))
	require.NoError(t, err)
	cmd := exec.Command("ip", "netns", "exec", l.simNS, filepath.Join(l.bin, "mozpool-sim"),
		"-inventory", invPath, "-api", strings.Join(l.urls(), ","), "-write-inventory", outPath,
		"-listen", l.addr(labHost)+":0", "-time-scale", strconv.FormatFloat(timeScale, 'f', -1, 64),
		"-relay-recovery", recovery.String(),
		// No injected board failures: this suite is about the cluster.
		"-fail-booting", "0", "-fail-mobile-init", "0", "-fail-downloading", "0", "-fail-extracting", "0",
		"-fail-rebooting", "0", "-fail-running", "0", "-self-test-ok", "1", "-broken", "0")
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	require.NoError(t, cmd.Start())
	l.simCmd, l.simDone = cmd, make(chan struct{})
	go func() { _ = cmd.Wait(); logf.Close(); close(l.simDone) }()
	require.Eventually(t, func() bool {
		st, err := os.Stat(outPath)
		return err == nil && st.Size() > 0
	}, 60*time.Second, 100*time.Millisecond, "the simulator wrote no inventory; see %s", logf.Name())
	bound, err := os.ReadFile(outPath)
	require.NoError(t, err)
	var ainv api.Inventory
	require.NoError(t, json.NewDecoder(bytes.NewReader(bound)).Decode(&ainv))
	c := client.New(l.nodes[0].url, client.WithToken(l.token))
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	_, err = c.SyncInventory(ctx, ainv, false, true)
	require.NoError(t, err)
}

// teardown stops the processes and removes the namespaces and links.
func (l *lab) teardown() {
	if l.proxy != nil {
		l.proxy.close()
	}
	for _, n := range l.nodes {
		n.signal(syscall.SIGCONT)
		n.signal(syscall.SIGTERM)
	}
	if l.simCmd != nil {
		_ = l.simCmd.Process.Signal(syscall.SIGTERM)
	}
	deadline := time.After(15 * time.Second)
	for _, n := range l.nodes {
		n.mu.Lock()
		exited := n.exited
		n.mu.Unlock()
		if exited == nil {
			continue
		}
		select {
		case <-exited:
		case <-deadline:
			n.signal(syscall.SIGKILL)
			<-exited
		}
	}
	if l.simCmd != nil {
		select {
		case <-l.simDone:
		case <-time.After(5 * time.Second):
			_ = l.simCmd.Process.Kill()
			<-l.simDone
		}
	}
	for _, n := range l.nodes {
		try("ip", "netns", "del", n.ns)
	}
	if l.simNS != "" {
		try("ip", "netns", "del", l.simNS)
	}
	if l.bridge != "" {
		try("ip", "link", "del", l.bridge)
	}
	if l.t.Failed() {
		for _, n := range l.nodes {
			if b, err := os.ReadFile(n.logPath); err == nil {
				l.t.Logf("=== tail of %s\n%s", n.logPath, tail(string(b), 40))
			}
		}
	}
}

func tail(s string, lines int) string {
	parts := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(parts) > lines {
		parts = parts[len(parts)-lines:]
	}
	return strings.Join(parts, "\n")
}

// ipt runs iptables in node n's namespace.
func (l *lab) ipt(n *node, args ...string) {
	l.t.Helper()
	l.sh(append([]string{"ip", "netns", "exec", n.ns, "iptables", "-w"}, args...)...)
}

// cut drops all traffic between nodes a and b, silently (each side drops
// what comes from the other, directly or through the proxies).
func (l *lab) cut(a, b *node) {
	l.t.Helper()
	for _, p := range [][2]*node{{a, b}, {b, a}} {
		l.ipt(p[0], "-A", "INPUT", "-s", p[1].ip, "-j", "DROP")
		l.ipt(p[0], "-A", "OUTPUT", "-d", p[1].ip, "-j", "DROP")
		l.ipt(p[0], "-A", "OUTPUT", "-m", "conntrack", "--ctorigdst", p[1].ip, "-j", "DROP")
	}
}

// lossy drops a fraction of the packets every node receives from its peers
// and from clients (everything but the lab's).
func (l *lab) lossy(p float64) {
	l.t.Helper()
	for _, n := range l.nodes {
		l.ipt(n, "-A", "INPUT", "!", "-s", l.addr(labHost), "-m", "statistic", "--mode", "random",
			"--probability", strconv.FormatFloat(p, 'f', 3, 64), "-j", "DROP")
	}
}

// heal removes every filter rule (the proxies' redirections stay).
func (l *lab) heal() {
	l.t.Helper()
	for _, n := range l.nodes {
		l.ipt(n, "-F")
	}
	for _, n := range l.nodes {
		l.sh("ip", "link", "set", n.veth, "up")
	}
	l.proxy.setDelay(0)
}
