package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"regexp"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/mozpool/mozpool/api"
	"github.com/mozpool/mozpool/bmm/relay"
	"github.com/mozpool/mozpool/daemon"
	"github.com/mozpool/mozpool/daemon/daemontest"
	"github.com/mozpool/mozpool/fsm"
	"github.com/mozpool/mozpool/internal/testlog"
	"github.com/mozpool/mozpool/lifeguard"
	"github.com/mozpool/mozpool/requests"
	"github.com/mozpool/mozpool/sim"
)

// timeScale divides every lifeguard timeout and every simulated delay. At
// 0.02 pxe_power_cycling's 60 s is 1.2 s, while a simulated relay cycle
// (off time and recovery shrink with the scale, to 20 ms) takes well
// under 100 ms; a b2g imaging takes about 5 s of wall time.
const timeScale = 0.02

const (
	// poll is how often Eventually and Never look.
	poll = 20 * time.Millisecond
	// racks is the number of imaging servers (one rack and one relay
	// board each); boardsPerRack boards hang off each relay board.
	racks         = 3
	boardsPerRack = 4
	// relayRecovery is the simulated relay boards' pause after each
	// connection: shorter than the nodes' own (20 ms at this scale), so
	// that a node never finds a board still recovering.
	relayRecovery = 10 * time.Millisecond
)

// scaled is a duration of the state tables at the test's time scale.
func scaled(d time.Duration) time.Duration { return time.Duration(float64(d) * timeScale) }

// quiet is how long a test watches a board that must not move: three of
// the shortest hardware state's timeout (pxe_power_cycling's 60 s).
var quiet = 3 * scaled(60*time.Second)

// PXE configs: what matters to a simulated board is the second stage its
// kernel command line names, as for a real Panda's live image.
const (
	pxeB2G         = "b2g-pxe"
	pxeAndroid     = "android-pxe"
	pxeSelfTest    = "self-test-pxe"
	pxeMaintenance = "maintenance-pxe"
)

func pxeContents(stage string) string {
	return "default linux\nlabel linux\n" +
		"  kernel http://%IPADDRESS%/mobile-imaging/panda/uImage\n" +
		"  initrd http://%IPADDRESS%/mobile-imaging/panda/uInitrd\n" +
		"  append ip=dhcp console=ttyO2,115200n8 rootwait ro " +
		"mobile-imaging-url=http://%IPADDRESS%/mobile-imaging/" + stage + "-second-stage.sh\n"
}

// labOptions tune startLab.
type labOptions struct {
	// Failures are the simulator's failure probabilities. The zero value
	// injects none, and every self-test passes.
	Failures sim.Failures
	// NoRelay names devices of the last rack that the inventory lists
	// without relay_info (no power control). The simulator cannot run
	// such a board; only the cluster knows it.
	NoRelay []string
	// BoardsPerRack is the number of boards per rack (default
	// boardsPerRack; at most 10, so that addresses and inventory ids
	// stay distinct); relays 1-8 of bank 1, then bank 2.
	BoardsPerRack int
	// Racks, if set, name racks' servers (owner preference, then
	// standbys), in the inventory both the cluster and the simulator get.
	Racks []fsm.InventoryRack
	// Configure adjusts each node's configuration (daemontest.Options).
	Configure func(cfg *daemon.Config)
	// TFTPFault, if set, is the simulator's FaultyTFTP; the boards' TFTP
	// client then gives up after 0.4 s, well within pxe_booting's scaled
	// timeout, as a Panda's does within the unscaled one.
	TFTPFault *sim.TFTPFault
}

// lab is a 3-node cluster of whole daemons and the simulated lab it runs.
type lab struct {
	cluster *daemontest.Cluster
	sim     *sim.Lab
	inv     fsm.Inventory // as synced into the cluster
	subnet  string        // 127.X.Y
	perRack int           // boards per rack
	next    atomic.Uint64 // round-robin over the live nodes for reads
}

// boardName is the name of board slot (1-based) of rack (1-based).
func boardName(rack, slot int) string { return fmt.Sprintf("panda-%d%d", rack, slot) }

// relayBoardName is the name the inventory gives rack's relay board.
func relayBoardName(rack int) string { return fmt.Sprintf("relay-%d", rack) }

// testSubnet picks a random 127.X.Y prefix so that concurrent test runs
// (and the sim package's own tests, which do the same) give their boards
// distinct addresses. 127.1 and 127.2 are left to lab/lab.json.
func testSubnet() string {
	return fmt.Sprintf("127.%d.%d", 10+rand.IntN(240), rand.IntN(256))
}

// testInventory is the lab before its relay boards are bound: rack r is
// served by node r and has one relay board at 127.X.Y.r (port 0: any free
// one); its boards are at 127.X.Y.(10r+slot), each on its own relay.
func testInventory(subnet string, perRack int) fsm.Inventory {
	inv := fsm.Inventory{
		HardwareTypes: []fsm.InventoryHardwareType{{Type: "panda", Model: "ES Rev B2"}},
		Images: []fsm.ImageSpec{
			{Name: "b2g", BootConfigKeys: []string{"b2gbase"}, HasSUTAgent: true},
			{Name: "android", CanReuse: true, HasSUTAgent: true},
			{Name: "self-test", Hidden: true},
			{Name: "maintenance", Hidden: true},
		},
		PXEConfigs: []fsm.InventoryPXEConfig{
			{Name: pxeB2G, Description: "install b2g", Contents: pxeContents("b2g")},
			{Name: pxeAndroid, Description: "install android", Contents: pxeContents("android")},
			{Name: pxeSelfTest, Description: "self-test", Contents: pxeContents("selftest")},
			{Name: pxeMaintenance, Description: "maintenance live image", Contents: pxeContents("maintenance")},
		},
	}
	for image, pxe := range map[string]string{"b2g": pxeB2G, "android": pxeAndroid, "self-test": pxeSelfTest, "maintenance": pxeMaintenance} {
		inv.ImagePXEConfigs = append(inv.ImagePXEConfigs, fsm.InventoryImagePXE{
			Image: image, HardwareType: "panda", HardwareModel: "ES Rev B2", PXEConfig: pxe,
		})
	}
	for r := 1; r <= racks; r++ {
		inv.ImagingServers = append(inv.ImagingServers, fsm.InventoryServer{Name: daemontest.NodeName(r), Rack: fmt.Sprintf("rack%d", r)})
		for s := 1; s <= perRack; s++ {
			inv.Devices = append(inv.Devices, fsm.InventoryDevice{
				Name: boardName(r, s), FQDN: boardName(r, s) + ".lab", InventoryID: int64(10*r + s),
				MAC:           fmt.Sprintf("02:00:00:00:%02x:%02x", r, s),
				ImagingServer: daemontest.NodeName(r),
				RelayInfo:     fmt.Sprintf("%s.%d:0:bank%d:relay%d", subnet, r, (s-1)/8+1, (s-1)%8+1),
				IPAddress:     fmt.Sprintf("%s.%d", subnet, 10*r+s),
				HardwareType:  "panda", HardwareModel: "ES Rev B2",
			})
		}
	}
	return inv
}

// skipShort skips the test under -short: every test here starts a
// cluster and a lab and runs for tens of seconds.
func skipShort(t *testing.T) {
	t.Helper()
	if testing.Short() {
		t.Skip("end-to-end test with a 3-node cluster and a simulated lab")
	}
}

// startLab starts a 3-node cluster and a simulated lab at timeScale, and
// syncs the lab's inventory (with the relay boards' bound ports) into the
// cluster. Both stop when the test ends, the lab first.
func startLab(t *testing.T, opts labOptions) *lab {
	t.Helper()
	// The boards' ping and SUT ports are picked by daemontest (free ports
	// held for the test), and told to the simulator below.
	c := daemontest.New(t, racks, daemontest.Options{TimeScale: timeScale, Configure: opts.Configure})
	// Every node proposes the time scale once it knows a leader; devices
	// must not enter their first states before it applies.
	for _, n := range c.Nodes {
		require.Eventually(t, func() bool {
			var s float64
			n.FSM.Read(func(st *fsm.State) { s = st.TimeScale })
			return s == timeScale
		}, 10*time.Second, poll, "%s never applied the time scale", n.Name)
	}

	l := &lab{cluster: c, subnet: testSubnet(), perRack: boardsPerRack}
	if opts.BoardsPerRack > 0 {
		l.perRack = opts.BoardsPerRack
	}
	cfg := sim.DefaultConfig()
	cfg.Inventory = testInventory(l.subnet, l.perRack)
	cfg.Inventory.Racks = opts.Racks
	for _, n := range c.Nodes {
		cfg.API = append(cfg.API, n.URL)
	}
	// Nodes restarted by a test come back on new ports: look them up often.
	cfg.Discovery = 100 * time.Millisecond
	cfg.TimeScale = timeScale
	cfg.Failures = opts.Failures
	if cfg.Failures == (sim.Failures{}) {
		cfg.Failures.SelfTestOK = 1
	}
	cfg.BrokenFraction = 0
	if opts.TFTPFault != nil {
		cfg.FaultyTFTP = opts.TFTPFault
		cfg.TFTPTimeout, cfg.TFTPRetries = 200*time.Millisecond, 2
	}
	cfg.PingPort, cfg.SUTPort = c.PingPort(), c.SUTPort()
	cfg.RelayRecovery = relayRecovery
	cfg.HTTPTimeout = 5 * time.Second
	cfg.TLS = daemontest.ClientTLS()
	cfg.Logger = testlog.New(t).Named("sim")
	var err error
	l.sim, err = sim.New(cfg)
	require.NoError(t, err)
	require.NoError(t, l.sim.Start(context.Background()))
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		require.NoError(t, l.sim.Shutdown(ctx))
	})

	// The bound inventory, with each rack's relay board named.
	l.inv = l.sim.Inventory()
	for r := 1; r <= racks; r++ {
		ri, err := relay.ParseRelayInfo(l.deviceEntry(t, boardName(r, 1)).RelayInfo)
		require.NoError(t, err)
		l.inv.RelayBoards = append(l.inv.RelayBoards, fsm.InventoryRelayBoard{
			Name: relayBoardName(r), FQDN: ri.Addr(), ImagingServer: daemontest.NodeName(r),
		})
	}
	for i, name := range opts.NoRelay {
		l.inv.Devices = append(l.inv.Devices, fsm.InventoryDevice{
			Name: name, FQDN: name + ".lab", InventoryID: int64(900 + i),
			MAC:           fmt.Sprintf("02:00:00:00:ff:%02x", i),
			ImagingServer: daemontest.NodeName(racks),
			IPAddress:     fmt.Sprintf("%s.%d", l.subnet, 200+i),
			HardwareType:  "panda", HardwareModel: "ES Rev B2",
		})
	}
	c.LoadInventory(l.inv)
	return l
}

// deviceEntry returns dev's entry in the lab's inventory.
func (l *lab) deviceEntry(t *testing.T, dev string) fsm.InventoryDevice {
	t.Helper()
	for _, d := range l.inv.Devices {
		if d.Name == dev {
			return d
		}
	}
	t.Fatalf("no device %s in the inventory", dev)
	return fsm.InventoryDevice{}
}

// boards lists the simulated boards.
func (l *lab) boards() []string {
	var out []string
	for r := 1; r <= racks; r++ {
		for s := 1; s <= l.perRack; s++ {
			out = append(out, boardName(r, s))
		}
	}
	return out
}

// node returns a live node, a different one on each call, so that reads
// go through every node's API.
func (l *lab) node() *daemontest.Node {
	live := l.cluster.Live()
	return live[int(l.next.Add(1))%len(live)]
}

// logNode is the node whose device logs the tests read. Log stores are
// per node (entry ids differ between nodes), so a test that marks a
// log's end and reads what follows must ask the same node; node 1 is
// never killed.
func (l *lab) logNode() *daemontest.Node { return l.cluster.Nodes[0] }

// ownerOf returns the node serving dev's imaging server.
func (l *lab) ownerOf(t *testing.T, dev string) *daemontest.Node {
	t.Helper()
	server := l.deviceEntry(t, dev).ImagingServer
	for _, n := range l.cluster.Nodes {
		if n.Name == server {
			return n
		}
	}
	t.Fatalf("no node serves %s", server)
	return nil
}

// rackOf returns the rack (1-based) of dev's imaging server.
func (l *lab) rackOf(t *testing.T, dev string) int {
	t.Helper()
	server := l.deviceEntry(t, dev).ImagingServer
	for r := 1; r <= racks; r++ {
		if daemontest.NodeName(r) == server {
			return r
		}
	}
	t.Fatalf("%s is in no rack", dev)
	return 0
}

// nonOwner returns a live node that does not serve dev's imaging server.
func (l *lab) nonOwner(t *testing.T, dev string) *daemontest.Node {
	t.Helper()
	owner := l.ownerOf(t, dev)
	for _, n := range l.cluster.Live() {
		if n.Name != owner.Name {
			return n
		}
	}
	t.Fatalf("every live node owns %s", dev)
	return nil
}

// stateOn returns dev's lifeguard state as node n's API reports it, or ""
// if n could not answer.
func stateOn(n *daemontest.Node, dev string) lifeguard.State {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	s, err := n.Client().DeviceState(ctx, dev)
	if err != nil {
		return ""
	}
	return lifeguard.State(s)
}

// state returns dev's lifeguard state as some live node reports it (a
// different one on each call), or "" if that node could not answer. A
// node may lag behind the others by a few log entries.
func (l *lab) state(dev string) lifeguard.State { return stateOn(l.node(), dev) }

// leftState reports whether a node sees dev in a state other than state
// (a node that does not answer sees nothing). Use it once every node has
// seen dev in state (waitState), so that a lagging node is not taken for
// a move.
func (l *lab) leftState(dev string, state lifeguard.State) bool {
	s := l.state(dev)
	return s != "" && s != state
}

// waitState waits until every live node reports dev in state.
func (l *lab) waitState(t *testing.T, dev string, state lifeguard.State, timeout time.Duration) {
	t.Helper()
	var seen []string
	require.Eventually(t, func() bool {
		seen = seen[:0]
		for _, n := range l.cluster.Live() {
			seen = append(seen, n.Name+": "+string(stateOn(n, dev)))
		}
		for _, s := range seen {
			if !strings.HasSuffix(s, ": "+string(state)) {
				return false
			}
		}
		return true
	}, timeout, poll, "%s never reached %s on every node: %s", dev, state, lazy(func() string { return strings.Join(seen, ", ") }))
}

// details returns dev's details from a live node (the zero value if it
// could not answer; callers poll).
func (l *lab) details(dev string) api.DeviceDetails {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	d, _ := l.node().Client().Device(ctx, dev)
	return d
}

// image returns dev's current image, waiting for a node to answer.
func (l *lab) image(t *testing.T, dev string) string {
	t.Helper()
	var d api.DeviceDetails
	require.Eventually(t, func() bool { d = l.details(dev); return d.Name == dev }, 30*time.Second, poll, "details of %s", dev)
	return ptrString(d.Image)
}

func ptrString(p *string) string {
	if p == nil {
		return ""
	}
	return *p
}

// fetchLog reads dev's whole log from logNode, oldest first.
func (l *lab) fetchLog(dev string) ([]api.LogEntry, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	return l.logNode().Client().DeviceLog(ctx, dev, 0)
}

// deviceLog returns dev's whole log from logNode, oldest first, waiting
// out a node that is slow to answer while the cluster elects a leader.
func (l *lab) deviceLog(t *testing.T, dev string) []api.LogEntry {
	t.Helper()
	var log []api.LogEntry
	var err error
	require.Eventually(t, func() bool {
		log, err = l.fetchLog(dev)
		return err == nil
	}, 30*time.Second, poll, "read the log of %s: %s", dev, lazy(func() string { return fmt.Sprint(err) }))
	return log
}

// logMark returns the id of dev's newest log entry on logNode: logSince
// with it returns what was logged afterwards.
func (l *lab) logMark(t *testing.T, dev string) int64 {
	t.Helper()
	var mark int64
	for _, e := range l.deviceLog(t, dev) {
		mark = max(mark, e.ID)
	}
	return mark
}

// logSince returns dev's log entries newer than mark; nil if logNode
// does not answer (callers poll).
func (l *lab) logSince(dev string, mark int64) []api.LogEntry {
	log, err := l.fetchLog(dev)
	if err != nil {
		return nil
	}
	return after(log, mark)
}

// logAfter is logSince for callers that do not poll: it waits for an
// answer.
func (l *lab) logAfter(t *testing.T, dev string, mark int64) []api.LogEntry {
	t.Helper()
	return after(l.deviceLog(t, dev), mark)
}

func after(log []api.LogEntry, mark int64) []api.LogEntry {
	var out []api.LogEntry
	for _, e := range log {
		if e.ID > mark {
			out = append(out, e)
		}
	}
	return out
}

// The state machines' log lines that the tests look for (fsm and
// lifeguard write them).
const enteringPrefix = "entering state "

// auditSuffix ends the log lines a write through the API filed: " (by
// <caller>)".
var auditSuffix = regexp.MustCompile(` \(by [^)]*\)$`)

// bare is a log line without its audit suffix.
func bare(msg string) string { return auditSuffix.ReplaceAllString(msg, "") }

// enteringLine is the log line of a machine entering state.
func enteringLine[S ~string](state S) string { return enteringPrefix + string(state) }

// ignoredLine is the log line of an event that the machine ignores in
// state.
func ignoredLine[E, S ~string](ev E, state S) string {
	return fmt.Sprintf("ignored event %s in state %s", ev, state)
}

// failedLine is the log line of a device that enters a failed state.
func failedLine(state lifeguard.State) string { return "device has failed: " + string(state) }

// enteredStates lists the states a device's log shows it entering, in
// order.
func enteredStates(log []api.LogEntry) []lifeguard.State { return entered[lifeguard.State](log) }

// requestStates lists the states a request's log shows it entering, in
// order.
func requestStates(log []api.LogEntry) []requests.State { return entered[requests.State](log) }

// entered lists the states of machine S that log shows entered, in order.
func entered[S ~string](log []api.LogEntry) []S {
	var out []S
	for _, e := range log {
		if m := bare(e.Message); e.Source == "statemachine" && strings.HasPrefix(m, enteringPrefix) {
			out = append(out, S(strings.TrimPrefix(m, enteringPrefix)))
		}
	}
	return out
}

// inOrder reports whether want is a subsequence of got.
func inOrder[S comparable](got []S, want ...S) bool {
	i := 0
	for _, s := range got {
		if i < len(want) && s == want[i] {
			i++
		}
	}
	return i == len(want)
}

// requireStatesInOrder checks that the log shows the device entering
// states in this order (other states may come between them).
func requireStatesInOrder(t *testing.T, log []api.LogEntry, states ...lifeguard.State) {
	t.Helper()
	got := enteredStates(log)
	require.True(t, inOrder(got, states...), "states entered %v, want %v in this order", got, states)
}

// waitFlow waits until dev's log after mark shows states entered in this
// order and dev is in the last of them on every node, then returns that
// log.
func (l *lab) waitFlow(t *testing.T, dev string, mark int64, timeout time.Duration, states ...lifeguard.State) []api.LogEntry {
	t.Helper()
	final := states[len(states)-1]
	var log []api.LogEntry
	var now lifeguard.State
	require.Eventually(t, func() bool {
		// The state and the log from the same node, so that they agree.
		log = l.logSince(dev, mark)
		now = stateOn(l.logNode(), dev)
		return inOrder(enteredStates(log), states...) && now == final
	}, timeout, 50*time.Millisecond, "%s: want the states %v in this order; %s", dev, states,
		lazy(func() string { return fmt.Sprintf("entered %v, now in %q", enteredStates(log), now) }))
	requireStatesInOrder(t, log, states...)
	l.waitState(t, dev, final, 10*time.Second)
	return log
}

// lazy is a failure message computed when it is printed, so that it shows
// what a polling condition saw last.
type lazy func() string

func (f lazy) String() string { return f() }

// logHas reports whether log holds an entry from source whose message
// contains text.
func logHas(log []api.LogEntry, source, text string) bool {
	for _, e := range log {
		if e.Source == source && strings.Contains(e.Message, text) {
			return true
		}
	}
	return false
}

// waitLogLine waits until dev's log after mark holds a line from source
// containing each of texts. BMM and SUT lines are filed in batches, apart
// from the state machine's, so they may trail the transitions they led to.
func (l *lab) waitLogLine(t *testing.T, dev string, mark int64, source string, texts ...string) {
	t.Helper()
	require.Eventually(t, func() bool {
		log := l.logSince(dev, mark)
		for _, text := range texts {
			if !logHas(log, source, text) {
				return false
			}
		}
		return true
	}, 10*time.Second, poll, "%s: no %s log lines %q", dev, source, texts)
}

// do sends one request to a node's API, as the cluster's bootstrap admin,
// and returns the status and body (status 0 if there was no answer).
func do(t *testing.T, method, url string, body any) (int, []byte) {
	t.Helper()
	var r io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		require.NoError(t, err)
		r = bytes.NewReader(b)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, method, url, r)
	require.NoError(t, err)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	req.Header.Set("Authorization", "Bearer "+daemontest.Token)
	resp, err := daemontest.HTTPClient().Do(req)
	if err != nil {
		// Callers check the status; polling ones try again.
		t.Logf("%s %s: %v", method, url, err)
		return 0, nil
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Logf("%s %s: read the answer: %v", method, url, err)
		return 0, nil
	}
	return resp.StatusCode, b
}

// event sends a lifeguard event to dev through node (POST, with body as
// the event's arguments when not nil) and returns the status.
func event(t *testing.T, n *daemontest.Node, dev string, ev lifeguard.Event, body any) int {
	t.Helper()
	status, b := do(t, http.MethodPost, n.URL+"/api/device/"+dev+"/event/"+string(ev)+"/", body)
	if status != http.StatusOK {
		t.Logf("event %s to %s via %s: %d %s", ev, dev, n.Name, status, b)
	}
	return status
}

// imageArgs are the arguments of lifeguard.EventPleaseImage.
func imageArgs(image, bootConfig string) map[string]string {
	return map[string]string{"image": image, "boot_config": bootConfig}
}

// stateChange forces dev from one state to another through node and
// returns the status.
func stateChange(t *testing.T, n *daemontest.Node, dev string, from, to lifeguard.State) int {
	t.Helper()
	status, _ := do(t, http.MethodPost, n.URL+"/api/device/"+dev+"/state-change/"+string(from)+"/to/"+string(to)+"/", nil)
	return status
}

// relayCommands returns the commands dev's relay board received for dev's
// relay, oldest first ("set bank1 relay2 on": the relay is energised and
// the board loses power; "off": power back; "get ...": status).
func (l *lab) relayCommands(t *testing.T, dev string) []string {
	t.Helper()
	b := l.sim.Board(dev)
	require.Equal(t, dev, b.Name, "the lab has board %s", dev)
	rs := l.sim.Relay(b.Relay.Host)
	bank, rel := fmt.Sprintf("bank%d", b.Relay.Bank), fmt.Sprintf("relay%d", b.Relay.Relay)
	var out []string
	for _, c := range rs.Commands {
		f := strings.Fields(c)
		if len(f) >= 3 && f[1] == bank && f[2] == rel {
			out = append(out, c)
		}
	}
	return out
}

// actuations counts the set commands dev's relay acted on.
func (l *lab) actuations(t *testing.T, dev string) int {
	t.Helper()
	n := 0
	for _, c := range l.relayCommands(t, dev) {
		if strings.HasPrefix(c, "set ") && !strings.HasSuffix(c, "(failed)") {
			n++
		}
	}
	return n
}
