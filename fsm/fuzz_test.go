package fsm_test

import (
	"encoding/json"
	"fmt"
	"math"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/mozpool/mozpool/fsm"
	"github.com/mozpool/mozpool/lifeguard"
	"github.com/mozpool/mozpool/requests"
)

// Fuzz targets for the FSM's appliers and the inventory merge. A log entry
// that does not decode is a corrupt log and panics by design, so the
// targets fuzz the values of well-formed commands instead: they build a
// command from fuzzed fields, encode it with fsm.Encode, apply it to a
// state seeded with the sample inventory, and require that Apply does not
// panic, that a refused command leaves the state as it was, and that two
// replicas applying it end byte-identical. Run one with
//
//	go test -run '^$' -fuzz FuzzApplyCommand ./fsm/

// fuzzFSM is an FSM with both machines and the sample inventory, two
// pandas ready and one request holding one of them: a state every applier
// has something to act on. The logger is nil: the fuzzer runs many inputs.
func fuzzFSM(t *testing.T) *fsm.FSM {
	t.Helper()
	f := fsm.New(fsm.Config{Devices: lifeguard.Machine{}, Requests: requests.Machine{}})
	syncSample(t, f)
	at := t0.Add(time.Second)
	for i := 1; i <= 2; i++ {
		applyOK(t, f, uint64(1+i), fsm.CmdDeviceStateChange, fsm.DeviceStateChange{Header: fsm.Header{At: at},
			Device: fmt.Sprintf("panda-%04d", i), From: string(lifeguard.StateNew), To: string(lifeguard.StateReady)})
	}
	applyOK(t, f, 4, fsm.CmdRequestCreate, fsm.RequestCreate{Header: fsm.Header{At: at}, RequestedDevice: "any",
		Assignee: "me", Expires: at.Add(time.Hour), Image: "android", BootConfig: "{}", Environment: "any"})
	return f
}

// fuzzCommand builds a command of one of the known types (chosen by typ)
// from the fuzzed values.
func fuzzCommand(typ uint8, s1, s2, s3 string, n int64, u uint64, x float64, flag bool) (fsm.CommandType, fsm.Command) {
	ct := fsm.CommandType(typ%22 + 1)
	when := t0.Add(time.Duration(n))
	switch ct {
	case fsm.CmdServerUpsert:
		return ct, &fsm.ServerUpsert{Name: s1, NodeID: s2, Rack: s3, RaftAddr: s2, HTTPAddr: s3, GossipAddr: s1}
	case fsm.CmdServerRemove:
		return ct, &fsm.ServerRemove{NodeID: s1}
	case fsm.CmdInventorySync:
		inv := sampleInventory()
		d := &inv.Devices[int(u%uint64(len(inv.Devices)))]
		d.Name, d.MAC, d.RelayInfo, d.InventoryID = s1, s2, s3, n
		if flag {
			inv.Images = append(inv.Images, fsm.ImageSpec{Name: s3, BootConfigKeys: []string{s2}})
		}
		return ct, &fsm.InventorySync{Inventory: inv, ShipIt: flag}
	case fsm.CmdImageUpsert:
		return ct, &fsm.ImageUpsert{Image: fsm.ImageSpec{Name: s1, BootConfigKeys: []string{s2, s3}, CanReuse: flag, Hidden: n%2 == 0, HasSUTAgent: u%2 == 0}}
	case fsm.CmdPXEConfigUpsert:
		c := &fsm.PXEConfigUpsert{Name: s1, Create: flag}
		if n%2 == 0 {
			c.Description, c.Contents = &s2, &s3
		}
		if u%3 != 0 {
			active := u%3 == 1
			c.Active = &active
		}
		return ct, c
	case fsm.CmdImagePXEConfigSet:
		model := ""
		if flag {
			model = "ES Rev B2"
		}
		return ct, &fsm.ImagePXEConfigSet{Image: s1, HardwareType: s2, HardwareModel: model, PXEConfig: s3}
	case fsm.CmdDeviceSetComments:
		return ct, &fsm.DeviceSetComments{Device: s1, Comments: s2}
	case fsm.CmdDeviceSetEnvironment:
		return ct, &fsm.DeviceSetEnvironment{Device: s1, Environment: s2}
	case fsm.CmdLogAppend:
		return ct, &fsm.LogAppend{Entries: []fsm.LogEntry{{Kind: s1, Name: s2, At: when, Source: s3, Message: s2}}}
	case fsm.CmdDeviceSetNextBoot:
		return ct, &fsm.DeviceSetNextBoot{Device: s1, BootConfig: s2}
	case fsm.CmdDeviceEvent:
		c := &fsm.DeviceEvent{Device: s1, Event: s2, Generation: u, Source: "api"}
		if flag {
			c.Args.Image = &s3
		}
		if json.Valid([]byte(s3)) {
			c.Args.BootConfig = json.RawMessage(s3)
		}
		return ct, c
	case fsm.CmdDeviceTimeout:
		return ct, &fsm.DeviceTimeout{Device: s1, Generation: u}
	case fsm.CmdDeviceStateChange:
		return ct, &fsm.DeviceStateChange{Device: s1, From: s2, To: s3}
	case fsm.CmdSetTimeScale:
		return ct, &fsm.SetTimeScale{TimeScale: x}
	case fsm.CmdDeviceRegister:
		return ct, &fsm.DeviceRegister{Device: s1, MAC: s2, Address: s3}
	case fsm.CmdRequestCreate:
		env := "any"
		if flag {
			env = s3
		}
		return ct, &fsm.RequestCreate{RequestedDevice: s1, Assignee: s2, Expires: when, Image: s3, BootConfig: s2, Environment: env, Server: s1}
	case fsm.CmdRequestEvent:
		return ct, &fsm.RequestEvent{ID: n, Event: s1, Args: fsm.RequestEventArgs{ImagingResult: s2}, Generation: u}
	case fsm.CmdRequestTimeout:
		return ct, &fsm.RequestTimeout{ID: n, Generation: u}
	case fsm.CmdRequestRenew:
		return ct, &fsm.RequestRenew{ID: int64(u), Expires: when}
	case fsm.CmdRequestExpire:
		return ct, &fsm.RequestExpire{ID: n}
	case fsm.CmdRequestCompact:
		return ct, &fsm.RequestCompact{Before: when}
	case fsm.CmdServerHealth:
		return ct, &fsm.ServerHealth{Name: s1, Down: flag}
	}
	panic(fmt.Sprintf("no command for type %d", ct))
}

func FuzzApplyCommand(f *testing.F) {
	type seed struct {
		typ        fsm.CommandType
		s1, s2, s3 string
		n          int64
		u          uint64
		x          float64
		flag       bool
	}
	hour := int64(time.Hour)
	for _, s := range []seed{
		{fsm.CmdServerUpsert, "mobile-imaging-003", "node3", "rack-3", 0, 0, 0, false},
		{fsm.CmdServerUpsert, "mobile-imaging-001", "", "", 0, 0, 0, false},
		{fsm.CmdServerRemove, "node1", "", "", 0, 0, 0, false},
		{fsm.CmdInventorySync, "panda-0009", "00:11:22:33:44:99", "relay-9.lab:bank1:relay1", 109, 0, 0, true},
		{fsm.CmdInventorySync, "panda-0001", "bad mac", "relay", -1, 2, 0, false},
		{fsm.CmdInventorySync, "panda-0002", "00:11:22:33:44:02", "relay-1.lab:bank9:relay99", 102, 0, 0, true},
		{fsm.CmdImageUpsert, "new", "b2gbase", "other", 0, 0, 0, true},
		{fsm.CmdImageUpsert, "android", "", "", 1, 1, 0, false},
		{fsm.CmdPXEConfigUpsert, "panda-b2g-1", "d", "KERNEL x", 0, 2, 0, false},
		{fsm.CmdPXEConfigUpsert, "fresh", "d", "KERNEL x", 0, 1, 0, true},
		{fsm.CmdImagePXEConfigSet, "b2g", "panda", "panda-android-1", 0, 0, 0, true},
		{fsm.CmdImagePXEConfigSet, "b2g", "panda", "", 0, 0, 0, true},
		{fsm.CmdDeviceSetComments, "panda-0001", "flaky", "", 0, 0, 0, false},
		{fsm.CmdDeviceSetEnvironment, "panda-0003", "", "", 0, 0, 0, false},
		{fsm.CmdLogAppend, "device", "panda-0001", "syslog", 0, 0, 0, false},
		{fsm.CmdLogAppend, "request", "1", "api", -hour, 0, 0, false},
		{fsm.CmdDeviceSetNextBoot, "panda-0002", `{"b2gbase": "x"}`, "", 0, 0, 0, false},
		{fsm.CmdDeviceEvent, "panda-0001", "please_image", "b2g", 0, 0, 0, true},
		{fsm.CmdDeviceEvent, "panda-0003", "please_self_test", `{"a": 1}`, 0, 0, 0, false},
		{fsm.CmdDeviceEvent, "panda-0001", "ping_ok", "", 0, 1 << 63, 0, false},
		{fsm.CmdDeviceTimeout, "panda-0001", "", "", 0, 1, 0, false},
		{fsm.CmdDeviceStateChange, "panda-0004", "new", "failed_pxe_booting", 0, 0, 0, false},
		{fsm.CmdDeviceStateChange, "panda-0001", "ready", "no-such-state", 0, 0, 0, false},
		{fsm.CmdSetTimeScale, "", "", "", 0, 0, 0.1, false},
		{fsm.CmdSetTimeScale, "", "", "", 0, 0, -1, false},
		{fsm.CmdSetTimeScale, "", "", "", 0, 0, math.SmallestNonzeroFloat64, false},
		{fsm.CmdSetTimeScale, "", "", "", 0, 0, math.MaxFloat64, false},
		{fsm.CmdDeviceRegister, "panda-0004", "00:11:22:33:44:04", "10.0.0.4", 0, 0, 0, false},
		{fsm.CmdDeviceRegister, "panda-0004", "00-11-22-33-44-05", "", 0, 0, 0, false},
		{fsm.CmdRequestCreate, "any", "me", "android", hour, 0, 0, false},
		{fsm.CmdRequestCreate, "panda-0002", "me", "b2g", hour, 0, 0, false},
		{fsm.CmdRequestCreate, "panda-0001", "", "nope", -hour, 0, 0, true},
		{fsm.CmdRequestCreate, "any", "me", "android", math.MaxInt64, 0, 0, false},
		{fsm.CmdRequestEvent, "close", "", "", 1, 0, 0, false},
		{fsm.CmdRequestEvent, "device_not_found", "", "", 1, 5, 0, false},
		{fsm.CmdRequestEvent, "close", "", "", -1, 0, 0, false},
		{fsm.CmdRequestTimeout, "", "", "", 1, 1, 0, false},
		{fsm.CmdRequestRenew, "", "", "", 2 * hour, 1, 0, false},
		{fsm.CmdRequestRenew, "", "", "", math.MinInt64, 1, 0, false},
		{fsm.CmdRequestExpire, "", "", "", 1, 0, 0, false},
		{fsm.CmdRequestCompact, "", "", "", 100 * hour, 0, 0, false},
		{fsm.CmdServerHealth, "mobile-imaging-002", "", "", 0, 0, 0, true},
		{fsm.CmdServerHealth, "nope", "", "", 0, 0, 0, true},
	} {
		f.Add(uint8(s.typ-1), s.s1, s.s2, s.s3, s.n, s.u, s.x, s.flag, int64(0))
	}
	f.Fuzz(func(t *testing.T, typ uint8, s1, s2, s3 string, n int64, u uint64, x float64, flag bool, at int64) {
		ct, cmd := fuzzCommand(typ, s1, s2, s3, n, u, x, flag)
		cmd.Head().At = t0.Add(time.Minute + time.Duration(at))
		b, err := fsm.Encode(ct, cmd)
		if err != nil {
			t.Skip("not encodable:", err) // a NaN, a time past year 9999: never proposed
		}
		a, c := fuzzFSM(t), fuzzFSM(t)
		before := snapshotBytes(t, a)
		res := a.ApplyCommand(100, b)
		after := snapshotBytes(t, a)
		if res.Err != nil {
			requireState(t, before, a, "refused %s %s (%s) changed the state", ct, b[1:], res.Err.Message)
		}
		// Another replica applying the same entry ends in the same state
		// with the same result.
		require.Equal(t, res, c.ApplyCommand(100, b), "%s %s: results differ", ct, b[1:])
		require.Equal(t, after, snapshotBytes(t, c), "%s %s: replicas differ", ct, b[1:])
	})
}

// FuzzInventory feeds arbitrary JSON to the inventory decoder and, for
// what decodes, checks that a dry run and a sync (ship_it) agree, that a
// refused sync leaves the state alone, and that syncing an accepted
// inventory again changes nothing.
func FuzzInventory(f *testing.F) {
	sample, err := json.Marshal(sampleInventory())
	require.NoError(f, err)
	f.Add(sample)
	for _, s := range []string{
		`{}`, `{"devices": []}`, `null`, `[]`,
		`{"imaging_servers": [{"name": "mobile-imaging-001"}], "hardware_types": [{"type": "panda", "model": "ES Rev B2"}],
		  "devices": [{"name": "panda-0001", "fqdn": "panda-0001.lab", "inventory_id": 101, "mac_address": "001122334401",
		  "imaging_server": "mobile-imaging-001", "relay_info": "relay-1.lab:bank1:relay1", "hardware_type": "panda", "hardware_model": "ES Rev B2"}]}`,
		`{"devices": [{"name": "x", "mac_address": "zz", "imaging_server": "nope"}]}`,
		`{"devices": [{"name": "a"}, {"name": "a"}]}`,
		`{"relay_boards": [{"name": "r", "fqdn": "relay-1.lab:2101", "imaging_server": "mobile-imaging-002"}]}`,
		`{"relay_boards": [{"fqdn": ":0"}]}`,
		`{"pxe_configs": [{"name": "p", "contents": "x", "active": false}], "image_pxe_configs": [{"image": "b2g", "hardware_type": "panda", "pxe_config": "p"}]}`,
		`{"images": [{"name": "b2g", "boot_config_keys": ["", "b2gbase", "b2gbase"]}]}`,
		`{"devices": [{"name": "panda-0001", "relay_info": "relay-1.lab:99999:bank0:relay0"}]}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		var inv fsm.Inventory
		if json.Unmarshal(data, &inv) != nil {
			return
		}
		a := fuzzFSM(t)
		before := snapshotBytes(t, a)
		diff, dryErr := a.DryRunInventory(inv)
		requireState(t, before, a, "a dry run changed the state")
		b, err := fsm.Encode(fsm.CmdInventorySync, fsm.InventorySync{Header: fsm.Header{At: t0.Add(time.Minute)}, Inventory: inv, ShipIt: true})
		require.NoError(t, err)
		res := a.ApplyCommand(100, b)
		if res.Err != nil {
			require.Error(t, dryErr, "sync refused (%s), dry run accepted", res.Err.Message)
			requireState(t, before, a, "refused sync changed the state")
			return
		}
		require.NoError(t, dryErr, "dry run refused, sync accepted")
		var got fsm.InventoryDiff
		require.NoError(t, res.Decode(&got))
		require.Equal(t, *diff, got, "dry run and sync differ")

		again := a.ApplyCommand(101, b)
		require.NoError(t, again.Error())
		var second fsm.InventoryDiff
		require.NoError(t, again.Decode(&second))
		require.Empty(t, second.Changes, "syncing the same inventory twice")
	})
}

// fuzzWords are the names and values FuzzApplySequence builds its
// commands from, so that a few bytes reach deep states: devices, states,
// events, images, requests.
var fuzzWords = strings.Fields(`panda-0001 panda-0002 panda-0003 panda-0004 any me android b2g self-test maintenance
	panda ES-Rev-B2 mobile-imaging-001 mobile-imaging-002 node1 00:11:22:33:44:01 {} {"b2gbase":"x"}
	new ready free locked_out maintenance_mode troubleshooting failed_pxe_booting pxe_power_cycling
	self_test_running sut_verifying android_downloading operation_complete unknown_state
	please_image please_self_test please_power_cycle please_start_maintenance ping_ok power_cycle_ok
	power_cycle_failed sut_verify_ok sut_sdcard_ok mobile_init_started self_test_ok lifeguard_finished
	close expire find_device device_not_found device_busy pending finding_device closed failed
	panda-b2g-1 panda-android-1 device request syslog`)

// FuzzApplySequence applies a program of up to 32 commands, each built from
// seven bytes (type, three words, a request id or small number, a
// generation, a flag), with the clock advancing a minute a step. After each
// command: no panic, and a refused one left the state as it was; at the
// end, a second replica that applied the same log is byte-identical.
func FuzzApplySequence(f *testing.F) {
	word := func(w string) byte { return byte(slices.Index(fuzzWords, w)) }
	op := func(t fsm.CommandType, a, b, c string, n, u, flag byte) []byte {
		return []byte{byte(t - 1), word(a), word(b), word(c), n, u, flag}
	}
	f.Add(slices.Concat(
		op(fsm.CmdDeviceEvent, "panda-0001", "please_image", "b2g", 0, 0, 1),
		op(fsm.CmdDeviceEvent, "panda-0001", "power_cycle_ok", "", 0, 0, 0),
		op(fsm.CmdDeviceTimeout, "panda-0001", "", "", 0, 3, 0),
		op(fsm.CmdDeviceEvent, "panda-0001", "mobile_init_started", "", 0, 0, 0),
		op(fsm.CmdRequestEvent, "close", "", "", 1, 0, 0)))
	f.Add(slices.Concat(
		op(fsm.CmdRequestCreate, "panda-0002", "me", "android", 60, 0, 0),
		op(fsm.CmdRequestTimeout, "", "", "", 2, 1, 0),
		op(fsm.CmdRequestRenew, "", "", "", 2, 2, 0),
		op(fsm.CmdDeviceStateChange, "panda-0002", "ready", "failed_pxe_booting", 0, 0, 0),
		op(fsm.CmdRequestExpire, "", "", "", 2, 0, 0),
		op(fsm.CmdRequestCompact, "", "", "", 120, 0, 0)))
	f.Add(slices.Concat(
		op(fsm.CmdInventorySync, "panda-0001", "00:11:22:33:44:01", "panda", 1, 0, 1),
		op(fsm.CmdServerHealth, "mobile-imaging-001", "", "", 0, 0, 1),
		op(fsm.CmdRequestCreate, "any", "me", "b2g", 60, 0, 0),
		op(fsm.CmdServerRemove, "node1", "", "", 0, 0, 0),
		op(fsm.CmdImageUpsert, "b2g", "", "", 0, 0, 0),
		op(fsm.CmdDeviceRegister, "panda-0003", "00:11:22:33:44:01", "", 0, 0, 0)))
	f.Add(slices.Concat(
		op(fsm.CmdPXEConfigUpsert, "panda-b2g-1", "", "", 0, 1, 0),
		op(fsm.CmdImagePXEConfigSet, "b2g", "panda", "", 0, 0, 1),
		op(fsm.CmdDeviceEvent, "panda-0003", "please_image", "b2g", 0, 0, 1),
		op(fsm.CmdSetTimeScale, "", "", "", 0, 0, 0),
		op(fsm.CmdDeviceEvent, "panda-0004", "please_start_maintenance", "", 0, 0, 0)))
	f.Fuzz(func(t *testing.T, prog []byte) {
		a, c := fuzzFSM(t), fuzzFSM(t)
		w := func(b byte) string {
			if int(b) < len(fuzzWords) {
				return fuzzWords[b]
			}
			return ""
		}
		at := t0.Add(time.Minute)
		for i := 0; i+7 <= len(prog) && i < 7*32; i += 7 {
			p := prog[i : i+7]
			n := int64(p[4])
			ct, cmd := fuzzCommand(p[0], w(p[1]), w(p[2]), w(p[3]), n*int64(time.Minute), uint64(p[5]), float64(p[4])/10, p[6]%2 == 1)
			switch cmd := cmd.(type) { // ids, not durations
			case *fsm.RequestEvent:
				cmd.ID = n
			case *fsm.RequestTimeout:
				cmd.ID = n
			case *fsm.RequestExpire:
				cmd.ID = n
			case *fsm.RequestRenew:
				cmd.ID, cmd.Expires = n, at.Add(time.Duration(p[5])*time.Minute)
			}
			at = at.Add(time.Minute)
			cmd.Head().At = at
			b, err := fsm.Encode(ct, cmd)
			require.NoError(t, err)
			before := snapshotBytes(t, a)
			index := uint64(100 + i)
			res := a.ApplyCommand(index, b)
			if res.Err != nil {
				requireState(t, before, a, "step %d: refused %s %s (%s) changed the state", i/7, ct, b[1:], res.Err.Message)
			}
			require.Equal(t, res, c.ApplyCommand(index, b), "step %d: %s %s: results differ", i/7, ct, b[1:])
		}
		require.Equal(t, snapshotBytes(t, a), snapshotBytes(t, c), "replicas differ")
	})
}

// FuzzCheckCommand feeds arbitrary bytes to CheckCommand, the guard before
// a forwarded command is proposed: what it lets through, Apply must apply
// without panicking (a panic there crashes every node, at every replay).
func FuzzCheckCommand(f *testing.F) {
	for _, s := range []string{
		"", "{", "\x00{}", "\x07", "\x07{", "\x07{}", "\x07null", "\x07[]", `\x07{"at": "x"}`,
		"\x10{\"requested_device\": \"any\"}", "\x7b\"a\": 1}", "\x87{}", "\x80{}", "\xff", "\x03{\"inventory\": 5}",
		"\x11{\"id\": 99999999999999999999}", "\x0e{\"scale\": 1e309}",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		if fsm.CheckCommand(b) != nil {
			return
		}
		fuzzFSM(t).ApplyCommand(100, b)
	})
}

// A command CheckCommand refuses is one Apply would panic on.
func TestCheckCommand_RefusesWhatApplyPanicsOn(t *testing.T) {
	for _, b := range []string{"", "{", `{"comments": "x"}`, "\x00{}", "\x07", "\x07{", "\x07[]", `\x07{"at": 5}`, "\x7f{}"} {
		require.Error(t, fsm.CheckCommand([]byte(b)), "%q", b)
		require.Panics(t, func() { fuzzFSM(t).ApplyCommand(100, []byte(b)) }, "%q", b)
	}
	require.NoError(t, fsm.CheckCommand([]byte("\x87{}")), "an unknown command marked IgnoreUnknown is skipped by Apply")
	require.NotPanics(t, func() { fuzzFSM(t).ApplyCommand(100, []byte("\x87{}")) })
}
