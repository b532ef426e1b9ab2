package metrics

import (
	"fmt"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/mozpool/mozpool/fsm"
	"github.com/mozpool/mozpool/lifeguard"
)

// BenchmarkStateCollector is one scrape of the device and request gauges
// over a state of 10,000 devices on 20 imaging servers.
func BenchmarkStateCollector(b *testing.B) {
	inv := fsm.Inventory{HardwareTypes: []fsm.InventoryHardwareType{{Type: "panda", Model: "ES"}}}
	for i := range 20 {
		inv.ImagingServers = append(inv.ImagingServers, fsm.InventoryServer{Name: fmt.Sprintf("server%d", i)})
	}
	for i := range 10000 {
		inv.Devices = append(inv.Devices, fsm.InventoryDevice{
			Name: fmt.Sprintf("panda-%05d", i), FQDN: fmt.Sprintf("panda-%05d.lab", i), InventoryID: int64(i + 1),
			MAC: fmt.Sprintf("00:00:00:00:%02x:%02x", i/256, i%256), ImagingServer: fmt.Sprintf("server%d", i%20),
			HardwareType: "panda", HardwareModel: "ES",
		})
	}
	f := fsm.New(fsm.Config{Devices: lifeguard.Machine{}})
	cmd, err := fsm.Encode(fsm.CmdInventorySync, fsm.InventorySync{Header: fsm.Header{At: time.Now()}, Inventory: inv, ShipIt: true})
	if err != nil {
		b.Fatal(err)
	}
	if res := f.ApplyCommand(1, cmd); res.Error() != nil {
		b.Fatal(res.Error())
	}
	f.Read(func(s *fsm.State) {
		if len(s.Devices) != 10000 {
			b.Fatalf("%d devices", len(s.Devices))
		}
	})
	c := &stateCollector{fsm: f,
		devices:   prometheus.NewDesc("d", "d", []string{"state", "imaging_server"}, nil),
		requests:  prometheus.NewDesc("r", "r", []string{"state"}, nil),
		waiting:   prometheus.NewDesc("w", "w", []string{"state"}, nil),
		queued:    prometheus.NewDesc("q", "q", []string{"group"}, nil),
		queueWait: prometheus.NewDesc("qw", "qw", []string{"group"}, nil), now: time.Now}
	ch := make(chan prometheus.Metric, 1024)
	b.ResetTimer()
	for range b.N {
		done := make(chan struct{})
		go func() {
			for range ch {
			}
			close(done)
		}()
		c.Collect(ch)
		close(ch)
		<-done
		ch = make(chan prometheus.Metric, 1024)
	}
}
