package e2e

import (
	"flag"
	"os"
	"testing"
)

// TestMain lets more scenarios run at once than -parallel's default
// (GOMAXPROCS) allows, unless -parallel is given: they spend their time
// waiting for simulated boards and scaled timeouts, not on the CPU.
func TestMain(m *testing.M) {
	flag.Parse()
	set := false
	flag.Visit(func(f *flag.Flag) { set = set || f.Name == "test.parallel" })
	if !set {
		flag.Set("test.parallel", "16")
	}
	os.Exit(m.Run())
}

// TestLab runs one cluster and one lab for most scenarios: the boards'
// first self-test, then the scenarios that each use their own boards, in
// parallel, then the node crash, which needs the whole cluster to itself.
//
// Boards: rack r is served by node r (mobile-imaging-00r).
//
//	panda-11 b2g flow          panda-21 reboot flow          panda-31 BMM routes
//	panda-12 android flow      panda-22 maintenance flow     panda-32..34 spare
//	panda-13 images while      panda-23 frozen while
//	         node 2 is down             node 2 is down
//	panda-14 locked_out        panda-24 stops answering
func TestLab(t *testing.T) {
	skipShort(t)
	t.Parallel()
	l := startLab(t, labOptions{})

	t.Run("InitialSelfTest", func(t *testing.T) { testInitialSelfTest(t, l) })
	if t.Failed() {
		t.FailNow() // every other scenario starts from ready boards
	}
	t.Run("Scenarios", func(t *testing.T) {
		t.Run("B2GImage", func(t *testing.T) { t.Parallel(); testB2GImage(t, l, "panda-11") })
		t.Run("AndroidImage", func(t *testing.T) { t.Parallel(); testAndroidImage(t, l, "panda-12") })
		t.Run("LockedOut", func(t *testing.T) { t.Parallel(); testLockedOut(t, l, "panda-14") })
		t.Run("Reboot", func(t *testing.T) { t.Parallel(); testReboot(t, l, "panda-21") })
		t.Run("Maintenance", func(t *testing.T) { t.Parallel(); testMaintenance(t, l, "panda-22") })
		t.Run("StopsAnswering", func(t *testing.T) { t.Parallel(); testStopsAnswering(t, l, "panda-24") })
		t.Run("BMMRoutes", func(t *testing.T) { t.Parallel(); testBMMRoutes(t, l, "panda-31") })
	})
	t.Run("KillRackOwner", func(t *testing.T) { testKillRackOwner(t, l, "panda-13", "panda-23") })
}
