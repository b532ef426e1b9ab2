package httpapi

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptrace"
	"slices"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/mozpool/mozpool/fsm"
	"github.com/mozpool/mozpool/lifeguard"
)

// benchDevices adds devices dev00001… up to n devices in all.
func benchDevices(b *testing.B, e *testEnv, n int) {
	inv := sampleInventory()
	for i := len(inv.Devices) + 1; i <= n; i++ {
		d := testDevice(int64(i), fmt.Sprintf("dev%05d", i), "server1", "")
		d.MAC = fmt.Sprintf("00163e%06x", i)
		d.RelayInfo = fmt.Sprintf("relay%d.lab.example.com:bank1:relay1", i)
		inv.Devices = append(inv.Devices, d)
	}
	res, err := e.cluster.Apply(context.Background(), fsm.CmdInventorySync, &fsm.InventorySync{Inventory: inv, ShipIt: true})
	require.NoError(b, err)
	require.NoError(b, res.Error())
}

// BenchmarkDeviceReads10k measures local reads on a node that holds 10,000
// devices, through its HTTP API on loopback: the whole details list
// (/api/device/list/?details=1: time to the first byte and to the last)
// and one device's state (/api/device/{id}/state/). Each reports p50 and
// p99 in ms over b.N calls.
func BenchmarkDeviceReads10k(b *testing.B) {
	e := startTestEnv(b, fsm.Config{Devices: lifeguard.Machine{}})
	benchDevices(b, e, 10000)
	hc := &http.Client{}
	get := func(b *testing.B, path string) (first, full time.Duration) {
		t0 := time.Now()
		req, _ := http.NewRequest(http.MethodGet, e.ts.URL+path, nil)
		req = req.WithContext(httptrace.WithClientTrace(req.Context(), &httptrace.ClientTrace{
			GotFirstResponseByte: func() { first = time.Since(t0) },
		}))
		resp, err := hc.Do(req)
		require.NoError(b, err)
		_, err = io.Copy(io.Discard, resp.Body)
		require.NoError(b, err)
		resp.Body.Close()
		require.Equal(b, http.StatusOK, resp.StatusCode)
		return first, time.Since(t0)
	}
	ms := func(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
	report := func(b *testing.B, name string, ds []time.Duration) {
		slices.Sort(ds)
		b.ReportMetric(ms(ds[len(ds)/2]), name+"-p50-ms")
		b.ReportMetric(ms(ds[len(ds)*99/100]), name+"-p99-ms")
	}
	b.Run("list-details", func(b *testing.B) {
		var firsts, fulls []time.Duration
		for i := 0; i < b.N; i++ {
			f, l := get(b, "/api/device/list/?details=1")
			firsts, fulls = append(firsts, f), append(fulls, l)
		}
		report(b, "first-byte", firsts)
		report(b, "full", fulls)
		b.ReportMetric(0, "ns/op")
	})
	b.Run("one-state", func(b *testing.B) {
		var fulls []time.Duration
		for i := 0; i < b.N; i++ {
			_, l := get(b, fmt.Sprintf("/api/device/dev%05d/state/", 4+i%9990))
			fulls = append(fulls, l)
		}
		report(b, "full", fulls)
		b.ReportMetric(0, "ns/op")
	})
}
