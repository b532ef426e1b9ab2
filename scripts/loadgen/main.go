// Command loadgen runs one claim-and-release workload against a Mozpool
// cluster or a 3-member etcd, so that both are measured by the same client
// (scripts/bench-vs-etcd.sh runs it against both and prints the ratio).
//
// One operation is a claim then a release:
//   - mozpool: POST /api/device/any/request/ (a request for any board),
//     then POST /api/request/{id}/return/, round robin over the nodes;
//   - etcd: a transaction that puts device/NNNN if it does not exist
//     (trying further keys while they exist), then a delete of that key,
//     through etcd's JSON gateway (/v3/kv/txn, /v3/kv/deleterange), round
//     robin over the members.
//
// Both go over HTTP/1.1 with JSON and keep-alive connections. For each
// client count it runs for -duration after a short warm-up and prints one
// line: target, clients, operations per second, p50 and p99 of the claim,
// errors, and the Raft log entries the cluster committed per second and
// per operation over the measured time (Mozpool's commit index from
// /api/cluster/status/, etcd's raft index from /v3/maintenance/status):
// etcd commits two entries an operation; Mozpool commits the two writes
// and whatever the lab does because of them (the board a request claims is
// imaged) or meanwhile (health checks, timers).
//
//	go run ./scripts/loadgen -target mozpool -urls http://127.0.0.1:8001,... -clients 1,16,64 -duration 10s
package main

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

func main() {
	target := flag.String("target", "mozpool", "mozpool or etcd")
	urls := flag.String("urls", "", "comma-separated base URLs of the nodes or members")
	clients := flag.String("clients", "1,16,64", "comma-separated client counts")
	duration := flag.Duration("duration", 10*time.Second, "measured time per client count")
	warmup := flag.Duration("warmup", 2*time.Second, "unmeasured time before each run")
	keys := flag.Int("keys", 1002, "etcd: number of device keys")
	flag.Parse()
	if *urls == "" {
		fail("-urls is required")
	}
	var op func(ctx context.Context, hc *http.Client, base string, r *rand.Rand) (time.Duration, error)
	switch *target {
	case "mozpool":
		op = mozpoolOp
	case "etcd":
		op = func(ctx context.Context, hc *http.Client, base string, r *rand.Rand) (time.Duration, error) {
			return etcdOp(ctx, hc, base, r, *keys)
		}
	default:
		fail("-target must be mozpool or etcd")
	}
	bases := strings.Split(*urls, ",")
	for _, s := range strings.Split(*clients, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(s))
		if err != nil || n < 1 {
			fail("bad client count " + s)
		}
		res, err := run(op, bases, n, *warmup, *duration, func() (uint64, error) { return raftIndex(*target, bases[0]) })
		if err != nil {
			fail(err.Error())
		}
		fmt.Printf("%s clients=%d ops/s=%.0f claim_p50_ms=%.1f claim_p99_ms=%.1f errors=%d entries/s=%.0f entries/op=%.1f\n",
			*target, n, res.rate, res.p50, res.p99, res.errors, res.entries, res.entries/max(res.rate, 1e-9))
	}
}

func fail(msg string) {
	fmt.Fprintln(os.Stderr, "loadgen:", msg)
	os.Exit(2)
}

type result struct {
	rate, p50, p99 float64
	errors         int64
	entries        float64 // Raft log entries committed per second
}

// raftIndex reads the cluster's Raft index through the node or member at
// base.
func raftIndex(target, base string) (uint64, error) {
	hc := &http.Client{Timeout: 5 * time.Second}
	var out struct {
		CommitIndex uint64 `json:"commit_index"` // mozpool
		RaftIndex   string `json:"raftIndex"`    // etcd (a string in its JSON gateway)
	}
	var err error
	if target == "etcd" {
		err = post(context.Background(), hc, base+"/v3/maintenance/status", []byte(`{}`), &out)
	} else {
		var resp *http.Response
		if resp, err = hc.Get(base + "/api/cluster/status/"); err == nil {
			defer resp.Body.Close()
			err = json.NewDecoder(resp.Body).Decode(&out)
		}
	}
	if err != nil {
		return 0, fmt.Errorf("raft index: %w", err)
	}
	if target == "etcd" {
		return strconv.ParseUint(out.RaftIndex, 10, 64)
	}
	return out.CommitIndex, nil
}

func run(op func(context.Context, *http.Client, string, *rand.Rand) (time.Duration, error), bases []string, clients int, warmup, duration time.Duration, index func() (uint64, error)) (result, error) {
	hc := &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: clients + 4}}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var measuring atomic.Bool
	var ops, errs atomic.Int64
	lats := make([][]time.Duration, clients)
	var wg sync.WaitGroup
	for w := 0; w < clients; w++ {
		wg.Add(1)
		// Ends when ctx is cancelled after the measured time.
		go func() {
			defer wg.Done()
			r := rand.New(rand.NewPCG(uint64(w), uint64(time.Now().UnixNano())))
			for i := w; ctx.Err() == nil; i++ {
				claim, err := op(ctx, hc, bases[i%len(bases)], r)
				if ctx.Err() != nil {
					return
				}
				if !measuring.Load() {
					continue
				}
				if err != nil {
					if errs.Add(1) == 1 {
						fmt.Fprintln(os.Stderr, "loadgen: first error:", err)
					}
					continue
				}
				ops.Add(1)
				lats[w] = append(lats[w], claim)
			}
		}()
	}
	time.Sleep(warmup)
	i0, err := index()
	if err != nil {
		return result{}, err
	}
	measuring.Store(true)
	start := time.Now()
	time.Sleep(duration)
	measuring.Store(false)
	elapsed := time.Since(start)
	i1, err := index()
	if err != nil {
		return result{}, err
	}
	cancel()
	wg.Wait()
	var all []time.Duration
	for _, l := range lats {
		all = append(all, l...)
	}
	if len(all) == 0 {
		return result{}, errors.New("no operation succeeded")
	}
	slices.Sort(all)
	ms := func(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
	return result{rate: float64(ops.Load()) / elapsed.Seconds(), p50: ms(all[len(all)/2]), p99: ms(all[len(all)*99/100]), errors: errs.Load(),
		entries: float64(i1-i0) / elapsed.Seconds()}, nil
}

func post(ctx context.Context, hc *http.Client, url string, body []byte, out any) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := hc.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return err
	}
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return fmt.Errorf("POST %s: %d %s", url, resp.StatusCode, bytes.TrimSpace(b))
	}
	if out != nil {
		return json.Unmarshal(b, out)
	}
	return nil
}

var mozpoolCreate = []byte(`{"assignee": "loadgen", "duration": 3600, "image": "b2g", "b2gbase": "http://x"}`)

func mozpoolOp(ctx context.Context, hc *http.Client, base string, _ *rand.Rand) (time.Duration, error) {
	t0 := time.Now()
	var created struct {
		Request struct {
			ID int64 `json:"id"`
		} `json:"request"`
	}
	if err := post(ctx, hc, base+"/api/device/any/request/", mozpoolCreate, &created); err != nil {
		return 0, err
	}
	claim := time.Since(t0)
	if created.Request.ID == 0 {
		return 0, errors.New("create answered without a request id")
	}
	return claim, post(ctx, hc, fmt.Sprintf("%s/api/request/%d/return/", base, created.Request.ID), []byte(`{}`), nil)
}

func b64(s string) string { return base64.StdEncoding.EncodeToString([]byte(s)) }

func etcdOp(ctx context.Context, hc *http.Client, base string, r *rand.Rand, keys int) (time.Duration, error) {
	t0 := time.Now()
	first := r.IntN(keys)
	for i := 0; i < keys; i++ {
		key := b64(fmt.Sprintf("device/%04d", (first+i)%keys))
		txn, _ := json.Marshal(map[string]any{
			"compare": []map[string]any{{"key": key, "target": "CREATE", "create_revision": "0", "result": "EQUAL"}},
			"success": []map[string]any{{"request_put": map[string]any{"key": key, "value": b64("loadgen")}}},
		})
		var res struct {
			Succeeded bool `json:"succeeded"`
		}
		if err := post(ctx, hc, base+"/v3/kv/txn", txn, &res); err != nil {
			return 0, err
		}
		if !res.Succeeded {
			continue
		}
		claim := time.Since(t0)
		del, _ := json.Marshal(map[string]any{"key": key})
		return claim, post(ctx, hc, base+"/v3/kv/deleterange", del, nil)
	}
	return 0, errors.New("every key is taken")
}
