// Package failover kills the leader of a real dev cluster (separate
// mozpoold processes, SIGKILL through scripts/devcluster.sh) while requests
// are being created, and checks that no acknowledged request is lost or
// doubly claimed.
package failover

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/mozpool/mozpool/api"
	"github.com/mozpool/mozpool/daemon/daemontest"
	"github.com/mozpool/mozpool/lifeguard"
	"github.com/mozpool/mozpool/requests"
	"github.com/mozpool/mozpool/sim"
)

const requestsInFlight = 50

type devcluster struct {
	t     *testing.T
	root  string
	env   []string
	nodes []string
}

func (dc *devcluster) run(args ...string) string {
	dc.t.Helper()
	cmd := exec.Command(filepath.Join(dc.root, "scripts/devcluster.sh"), args...)
	cmd.Dir, cmd.Env = dc.root, dc.env
	out, err := cmd.CombinedOutput()
	require.NoError(dc.t, err, "devcluster %v: %s", args, out)
	return string(out)
}

// transport carries the test's calls (trusting the dev cluster's CA).
var transport http.RoundTripper = http.DefaultTransport

func getJSON(url string, v any) error { return getJSONAt(url, 0, v) }

// getJSONAt is getJSON from a node that has applied at least minIndex (0:
// any): an answer acknowledged by one node is then visible on another.
func getJSONAt(url string, minIndex uint64, v any) error {
	c := &http.Client{Timeout: 10 * time.Second, Transport: transport}
	req, err := http.NewRequest(http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	if minIndex > 0 {
		req.Header.Set(api.HeaderMinIndex, strconv.FormatUint(minIndex, 10))
	}
	resp, err := c.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%s: %d", url, resp.StatusCode)
	}
	return json.NewDecoder(resp.Body).Decode(v)
}

type deviceRow struct {
	Name      string          `json:"name"`
	State     lifeguard.State `json:"state"`
	RequestID *int64          `json:"request_id"`
}

type requestRow struct {
	ID             int64          `json:"id"`
	State          requests.State `json:"state"`
	AssignedDevice string         `json:"assigned_device"`
}

// checkClaims fails if two requests hold one device, or a device's
// request_id disagrees with the request holding it.
func checkClaims(t *testing.T, url string, minIndex uint64) (map[int64]requestRow, bool) {
	var devs struct{ Devices []deviceRow }
	var reqs struct{ Requests []requestRow }
	if getJSONAt(url+"/api/device/list/?details=1", minIndex, &devs) != nil || getJSONAt(url+"/api/request/list/?include_closed=1", minIndex, &reqs) != nil {
		return nil, false
	}
	byID := map[int64]requestRow{}
	holder := map[string]int64{}
	for _, r := range reqs.Requests {
		byID[r.ID] = r
		if r.AssignedDevice == "" {
			continue
		}
		other, dup := holder[r.AssignedDevice]
		require.False(t, dup, "device %s held by requests %d and %d", r.AssignedDevice, other, r.ID)
		holder[r.AssignedDevice] = r.ID
	}
	for _, d := range devs.Devices {
		if d.RequestID != nil {
			r, ok := byID[*d.RequestID]
			require.True(t, ok && r.AssignedDevice == d.Name, "device %s says request %d, which does not hold it", d.Name, *d.RequestID)
		}
	}
	return byID, true
}

func TestLeaderKilledWhileRequestsInFlight(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a dev cluster of separate processes")
	}
	root, err := filepath.Abs("../..")
	require.NoError(t, err)
	dir := t.TempDir()
	// The boards' addresses and ports are this run's own: random loopback
	// networks, free ping and SUT ports (held by this process while the
	// cluster's processes use them), relay ports picked by the simulator.
	nets := daemontest.LoopbackNets(2)
	pingPort, sutPort := daemontest.FreePort(t), daemontest.FreePort(t)
	inv, err := sim.GenerateInventory(sim.GenerateOptions{
		Servers:         []string{daemontest.NodeName(1), daemontest.NodeName(2), daemontest.NodeName(3)},
		BoardsPerServer: 22, BoardNet: nets[0], RelayNet: nets[1], RelayPort: 0,
	})
	require.NoError(t, err)
	invPath := filepath.Join(dir, "lab.json")
	b, _ := json.Marshal(inv)
	require.NoError(t, os.WriteFile(invPath, b, 0o644))
	dc := &devcluster{t: t, root: root, env: append(os.Environ(),
		"MOZPOOL_DEVCLUSTER_DIR="+filepath.Join(dir, "dc"), "MOZPOOL_INVENTORY="+invPath, "MOZPOOL_TIME_SCALE=0.05",
		fmt.Sprintf("MOZPOOL_PING_PORT=%d", pingPort), fmt.Sprintf("MOZPOOL_SUT_PORT=%d", sutPort),
		// No injected failures: this test is about the cluster.
		"MOZPOOL_SIM_ARGS=-relay-recovery 20ms -fail-booting 0 -fail-mobile-init 0 -fail-downloading 0 -fail-extracting 0 -fail-rebooting 0 -fail-running 0 -self-test-ok 1")}
	t.Cleanup(func() { dc.run("down") })
	dc.run("up", "3")
	nodes, err := os.ReadFile(filepath.Join(dir, "dc", "nodes"))
	require.NoError(t, err)
	dc.nodes = strings.Fields(string(nodes))
	require.Len(t, dc.nodes, 3)
	// The dev cluster runs TLS: trust its CA.
	if pem, err := os.ReadFile(filepath.Join(dir, "dc", "tls", "ca.pem")); err == nil {
		pool := x509.NewCertPool()
		require.True(t, pool.AppendCertsFromPEM(pem))
		tr := http.DefaultTransport.(*http.Transport).Clone()
		tr.TLSClientConfig = &tls.Config{RootCAs: pool}
		transport = tr
	}

	// Wait for the boards' initial self-tests.
	require.Eventually(t, func() bool {
		var devs struct{ Devices []deviceRow }
		if getJSON(dc.nodes[0]+"/api/device/list/?details=1", &devs) != nil {
			return false
		}
		ready := 0
		for _, d := range devs.Devices {
			if d.State == lifeguard.StateReady {
				ready++
			}
		}
		return ready >= requestsInFlight
	}, 3*time.Minute, 500*time.Millisecond, "boards did not become ready")

	leader := func() int {
		for i, u := range dc.nodes {
			var st struct{ State string }
			if getJSON(u+"/api/cluster/status/", &st) == nil && st.State == "Leader" {
				return i
			}
		}
		return -1
	}
	killed := leader()
	require.GreaterOrEqual(t, killed, 0)

	// 50 clients create requests, each retrying on any failure with the
	// same Idempotency-Key against the other nodes; the leader is killed
	// once a few have been acknowledged.
	var mu sync.Mutex
	acked := map[int]int64{}
	var ackIndex uint64 // the highest index an acknowledgement reflected
	var wg sync.WaitGroup
	ackedOne := make(chan struct{}, requestsInFlight)
	hc := &http.Client{Timeout: 15 * time.Second, Transport: transport}
	for i := 0; i < requestsInFlight; i++ {
		wg.Add(1)
		// Exits when the request is acknowledged or after 90 s.
		go func(i int) {
			defer wg.Done()
			body := []byte(`{"assignee": "failover", "duration": 3600, "image": "b2g", "b2gbase": "http://x"}`)
			deadline := time.Now().Add(90 * time.Second)
			for n := i; time.Now().Before(deadline); n++ {
				req, _ := http.NewRequest(http.MethodPost, dc.nodes[n%3]+"/api/device/any/request/", bytes.NewReader(body))
				req.Header.Set("Idempotency-Key", fmt.Sprintf("failover-%d", i))
				resp, err := hc.Do(req)
				if err == nil {
					b, _ := io.ReadAll(resp.Body)
					resp.Body.Close()
					var out struct{ Request struct{ ID int64 } }
					if resp.StatusCode == http.StatusOK && json.Unmarshal(b, &out) == nil && out.Request.ID > 0 {
						idx, _ := strconv.ParseUint(resp.Header.Get(api.HeaderIndex), 10, 64)
						mu.Lock()
						acked[i] = out.Request.ID
						ackIndex = max(ackIndex, idx)
						mu.Unlock()
						ackedOne <- struct{}{}
						return
					}
				}
				time.Sleep(100 * time.Millisecond)
			}
		}(i)
	}
	for range 5 {
		<-ackedOne
	}
	start := time.Now()
	dc.run("kill", fmt.Sprint(killed+1))
	wg.Wait()
	t.Logf("all %d creations acknowledged %s after the kill", requestsInFlight, time.Since(start).Round(time.Millisecond))
	require.Len(t, acked, requestsInFlight, "every client got an acknowledgement")
	ids := map[int64]bool{}
	for _, id := range acked {
		require.False(t, ids[id], "request id %d acknowledged twice", id)
		ids[id] = true
	}

	// The survivor answers once it has applied every acknowledgement,
	// wherever it was given: a follower learns of a commit a heartbeat
	// later than the node that acknowledged it.
	survivor := dc.nodes[(killed+1)%3]
	byID, ok := checkClaims(t, survivor, ackIndex)
	require.True(t, ok)
	for id := range ids {
		_, found := byID[id]
		require.True(t, found, "acknowledged request %d lost", id)
	}

	// The killed node comes back from its data dir: its rack's boards,
	// frozen meanwhile, resume from the replicated state.
	dc.run("start", fmt.Sprint(killed+1))

	// Every acknowledged request keeps its claim, none is doubly claimed
	// (checked on every poll), and all reach ready.
	require.Eventually(t, func() bool {
		byID, ok := checkClaims(t, survivor, 0)
		if !ok {
			return false
		}
		for id := range ids {
			r, found := byID[id]
			require.True(t, found, "acknowledged request %d lost", id)
			require.False(t, r.State.Failed(), "request %d failed: %s", id, r.State)
			if r.State != requests.StateReady {
				return false
			}
		}
		return len(byID) == requestsInFlight
	}, 3*time.Minute, 500*time.Millisecond, "requests did not all reach ready")

	// The restarted node has caught up.
	require.Eventually(t, func() bool {
		byID, ok := checkClaims(t, dc.nodes[killed], 0)
		return ok && len(byID) == requestsInFlight
	}, time.Minute, 500*time.Millisecond)
}
