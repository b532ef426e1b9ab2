package daemontest

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/mozpool/mozpool/api"
	"github.com/mozpool/mozpool/client"
	"github.com/mozpool/mozpool/fsm"
)

// readsInventory is benchInventory with an image a request can ask for
// (no PXE config installs it, so requests wait for a device: they exist,
// which is all these tests need).
func readsInventory() api.Inventory {
	inv := benchInventory(2)
	inv.Images = []api.ImageSpec{{Name: "b2g", BootConfigKeys: []string{"b2gbase"}}}
	return inv
}

func b2gSpec() client.RequestSpec {
	return client.RequestSpec{Assignee: "tester", Duration: time.Hour, Image: "b2g",
		BootConfig: map[string]any{"b2gbase": "http://builds/b2g"}}
}

// rawGet GETs url and returns the status, the Retry-After header and the
// body.
func rawGet(t *testing.T, url string) (int, string, string) {
	t.Helper()
	resp, err := HTTPClient().Get(url)
	require.NoError(t, err)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return resp.StatusCode, resp.Header.Get("Retry-After"), string(b)
}

// A client that writes through one node and reads through another right
// after sees its write: it sends the index of its write as
// X-Mozpool-Min-Index, and the other node waits until it has applied it.
func TestReads_YourWritesAcrossNodes(t *testing.T) {
	if testing.Short() {
		t.Skip("multi-node cluster test")
	}
	ctx := context.Background()
	c := New(t, 3)
	c.LoadInventory(readsInventory())
	leader := c.WaitLeader()
	var other *Node
	for _, n := range c.Followers() {
		other = n
	}
	ix := &client.Index{}
	a := client.New(leader.URL, client.WithToken(Token), client.WithIndex(ix), client.WithHTTPClient(HTTPClient()))
	b := client.New(other.URL, client.WithToken(Token), client.WithIndex(ix), client.WithHTTPClient(HTTPClient()))

	for i := range 10 {
		comments := fmt.Sprintf("write %d", i)
		require.NoError(t, a.SetComments(ctx, "panda-0001", comments))
		written := ix.Load()
		d, err := b.Device(ctx, "panda-0001")
		require.NoError(t, err)
		require.NotNil(t, d.Comments)
		require.Equal(t, comments, *d.Comments, "read through %s after a write through %s", other.Name, leader.Name)
		require.GreaterOrEqual(t, b.LastIndex(), written)

		req, err := a.CreateRequest(ctx, "any", b2gSpec())
		require.NoError(t, err)
		st, err := b.RequestStatus(ctx, req.ID)
		require.NoError(t, err, "status of request %d through %s right after its creation", req.ID, other.Name)
		require.NotEmpty(t, st.State)
	}
}

// A restarted node that has not caught up answers 503 with Retry-After for
// a request it has not replayed yet, never 404, while its cluster and
// health routes and the UI keep answering; once it has caught up it
// answers the request.
func TestReads_RestartedNodeAnswers503UntilCaughtUp(t *testing.T) {
	if testing.Short() {
		t.Skip("multi-node cluster test")
	}
	ctx := context.Background()
	c := New(t, 3)
	c.LoadInventory(readsInventory())
	leader := c.WaitLeader()
	before, err := leader.Client().CreateRequest(ctx, "any", b2gSpec())
	require.NoError(t, err)
	c.WaitConverged()

	// A node goes down; a request is created without it; then the rest of
	// the cluster goes down too.
	back := c.Followers()[0]
	back.Stop()
	missed, err := c.Live()[0].Client().CreateRequest(ctx, "any", b2gSpec())
	require.NoError(t, err)
	var others []*Node
	for _, n := range c.Live() {
		others = append(others, n)
	}
	for _, n := range c.Followers() {
		n.Stop()
	}
	for _, n := range c.Live() {
		n.Stop()
	}

	// Alone it knows no leader and cannot catch up: it does not serve.
	back = c.Restart(back)
	for _, id := range []int64{before.ID, missed.ID} {
		status, retry, body := rawGet(t, fmt.Sprintf("%s/api/request/%d/status/", back.URL, id))
		require.Equal(t, http.StatusServiceUnavailable, status, "request %d: %s", id, body)
		require.Equal(t, "1", retry)
		var e api.Error
		require.NoError(t, json.Unmarshal([]byte(body), &e), body)
		require.Contains(t, e.Error, "caught up")
	}
	status, _, body := rawGet(t, back.URL+"/api/device/list/?stale")
	require.Equal(t, http.StatusOK, status, body)
	status, _, body = rawGet(t, back.URL+"/api/cluster/status/")
	require.Equal(t, http.StatusOK, status, body)
	status, _, body = rawGet(t, back.URL+"/api/cluster/health")
	require.Equal(t, http.StatusServiceUnavailable, status, body)
	status, _, _ = rawGet(t, back.URL+"/ui/")
	require.Equal(t, http.StatusOK, status)
	_, err = client.New(back.URL, client.WithRetries(0), client.WithHTTPClient(HTTPClient())).CreateRequest(ctx, "any", b2gSpec())
	var ce *client.Error
	require.ErrorAs(t, err, &ce)
	require.Equal(t, http.StatusServiceUnavailable, ce.Status, "a create is not validated against a stale state")

	// With a peer back there is a quorum again: it catches up and
	// answers, never 404 on the way.
	c.Restart(others[0])
	url := fmt.Sprintf("%s/api/request/%d/status/", back.URL, missed.ID)
	require.Eventually(t, func() bool {
		status, _, body := rawGet(t, url)
		require.Contains(t, []int{http.StatusOK, http.StatusServiceUnavailable}, status, body)
		return status == http.StatusOK
	}, 30*time.Second, 20*time.Millisecond, "the restarted node serves once caught up")
	st, err := back.Client().RequestStatus(ctx, missed.ID)
	require.NoError(t, err)
	require.NotEmpty(t, st.State)
}

// A restarted node applies again the log entries after its last snapshot;
// the device log lines those entries wrote before it stopped are not
// stored a second time.
func TestReads_RestartDoesNotDuplicateDeviceLogs(t *testing.T) {
	if testing.Short() {
		t.Skip("multi-node cluster test")
	}
	ctx := context.Background()
	c := New(t, 3)
	c.LoadInventory(readsInventory())
	leader := c.WaitLeader()
	for i := range 5 {
		_, err := leader.Cluster.Apply(ctx, fsm.CmdLogAppend, &fsm.LogAppend{Entries: []fsm.LogEntry{{
			Kind: fsm.LogDevice, Name: "panda-0002", At: time.Now(), Source: "syslog", Message: fmt.Sprintf("line %d", i)}}})
		require.NoError(t, err)
	}
	c.WaitConverged()
	back := c.Followers()[0]
	count := func(n *Node) int {
		log, err := n.Client().DeviceLog(ctx, "panda-0002", 0)
		require.NoError(t, err)
		lines := 0
		for _, e := range log {
			if strings.HasPrefix(e.Message, "line ") {
				lines++
			}
		}
		return lines
	}
	require.Equal(t, 5, count(back))

	back.Stop()
	back = c.Restart(back)
	require.Eventually(t, back.Cluster.Serving, 30*time.Second, 10*time.Millisecond)
	require.Equal(t, 5, count(back), "every line once after the restart")
}
