package pxe

import (
	"bytes"
	"context"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/stretchr/testify/require"
)

func testWriter(t *testing.T) *Writer {
	t.Helper()
	w, err := NewWriter(t.TempDir(), "10.0.0.5")
	require.NoError(t, err)
	return w
}

func TestNormalizeMAC(t *testing.T) {
	valid := []struct {
		name, mac, want string
	}{
		{"bare lower", "aabbccddeeff", "aabbccddeeff"},
		{"bare upper", "AABBCCDDEEFF", "aabbccddeeff"},
		{"colons", "aa:bb:cc:dd:ee:ff", "aabbccddeeff"},
		{"colons upper", "AA:BB:CC:DD:EE:FF", "aabbccddeeff"},
		{"dashes", "aa-bb-cc-dd-ee-ff", "aabbccddeeff"},
		{"digits", "000000000001", "000000000001"},
		{"mixed case", "0a:1B:2c:3D:4e:5F", "0a1b2c3d4e5f"},
	}
	for _, tc := range valid {
		t.Run(tc.name, func(t *testing.T) {
			got, err := NormalizeMAC(tc.mac)
			require.NoError(t, err)
			require.Equal(t, tc.want, got, "NormalizeMAC(%q)", tc.mac)
		})
	}

	invalid := []string{
		"",
		"aabbccddeef",         // 11 digits
		"aabbccddeeff0",       // 13 digits
		"aabbccddeegg",        // not hex
		"aa:bb-cc:dd:ee:ff",   // mixed separators
		"aa.bb.cc.dd.ee.ff",   // other separator
		"aabb:ccdd:eeff:0000", // wrong grouping
		"aa:bb:cc:dd:ee:ff:",  // trailing separator
		":aa:bb:cc:dd:ee:ff",  // leading separator
		"../../etc/passwd",
		"aa/bb/cc/dd/ee/ff",
		"aa:bb:cc:dd:ee:f\x00",
		"ａａbbccddeeff", // full-width letters
	}
	for _, mac := range invalid {
		t.Run("invalid "+mac, func(t *testing.T) {
			_, err := NormalizeMAC(mac)
			require.ErrorIs(t, err, ErrBadMAC, "NormalizeMAC(%q)", mac)
		})
	}
}

func TestWriterPath(t *testing.T) {
	w := testWriter(t)
	want := filepath.Join(w.Root(), "pxelinux.cfg", "01-aa-bb-cc-dd-ee-ff")
	for _, mac := range []string{"aabbccddeeff", "AABBCCDDEEFF", "aa:bb:cc:dd:ee:ff", "AA-BB-CC-DD-EE-FF"} {
		got, err := w.Path(mac)
		require.NoError(t, err)
		require.Equal(t, want, got, "Path(%q)", mac)
	}
	_, err := w.Path("../../../etc/passwd")
	require.ErrorIs(t, err, ErrBadMAC)
}

func TestNewWriterValidates(t *testing.T) {
	_, err := NewWriter("", "10.0.0.5")
	require.Error(t, err)
	_, err = NewWriter(t.TempDir(), "")
	require.Error(t, err)
}

func TestWriterSet(t *testing.T) {
	ctx := context.Background()
	w := testWriter(t)

	// pxelinux.cfg does not exist yet: Set creates it.
	contents := "default linux\nappend mobile-imaging-url=http://%IPADDRESS%/scripts/b2g-second-stage.sh syslog-server=%IPADDRESS%\n"
	require.NoError(t, w.Set(ctx, "AA:BB:CC:DD:EE:FF", contents))

	p := filepath.Join(w.Root(), "pxelinux.cfg", "01-aa-bb-cc-dd-ee-ff")
	b, err := os.ReadFile(p)
	require.NoError(t, err)
	want := "default linux\nappend mobile-imaging-url=http://10.0.0.5/scripts/b2g-second-stage.sh syslog-server=10.0.0.5\n"
	require.Equal(t, want, string(b))

	got, err := w.Read("aabbccddeeff")
	require.NoError(t, err)
	require.Equal(t, want, got)

	fi, err := os.Lstat(p)
	require.NoError(t, err)
	require.True(t, fi.Mode().IsRegular(), "mode %s, want a regular file", fi.Mode())
	require.Equal(t, fs.FileMode(0o644), fi.Mode().Perm())

	// Rewriting replaces the whole file, including with shorter contents.
	require.NoError(t, w.Set(ctx, "aa-bb-cc-dd-ee-ff", "short"))
	got, err = w.Read("aabbccddeeff")
	require.NoError(t, err)
	require.Equal(t, "short", got)

	// No temporary files are left behind.
	entries, err := os.ReadDir(filepath.Dir(p))
	require.NoError(t, err)
	require.Len(t, entries, 1)
	require.Equal(t, "01-aa-bb-cc-dd-ee-ff", entries[0].Name())
}

func TestWriterSetReplacesSymlink(t *testing.T) {
	ctx := context.Background()
	w := testWriter(t)
	outside := filepath.Join(t.TempDir(), "victim")
	require.NoError(t, os.WriteFile(outside, []byte("untouched"), 0o644))
	require.NoError(t, os.MkdirAll(filepath.Join(w.Root(), ConfigDir), 0o755))
	p, err := w.Path("aabbccddeeff")
	require.NoError(t, err)
	require.NoError(t, os.Symlink(outside, p))

	require.NoError(t, w.Set(ctx, "aabbccddeeff", "new"))

	fi, err := os.Lstat(p)
	require.NoError(t, err)
	require.True(t, fi.Mode().IsRegular(), "mode %s, want the symlink replaced by a regular file", fi.Mode())
	b, err := os.ReadFile(outside)
	require.NoError(t, err)
	require.Equal(t, "untouched", string(b), "the symlink's target was written through")
}

func TestWriterBadMACTouchesNothing(t *testing.T) {
	ctx := context.Background()
	w := testWriter(t)
	for _, mac := range []string{"", "../../etc/passwd", "aabbccddeeff/../../x", "aa:bb:cc:dd:ee"} {
		require.ErrorIs(t, w.Set(ctx, mac, "x"), ErrBadMAC, "Set(%q)", mac)
		require.ErrorIs(t, w.Clear(ctx, mac), ErrBadMAC, "Clear(%q)", mac)
		_, err := w.Read(mac)
		require.ErrorIs(t, err, ErrBadMAC, "Read(%q)", mac)
	}
	entries, err := os.ReadDir(w.Root())
	require.NoError(t, err)
	require.Empty(t, entries)
}

func TestWriterClear(t *testing.T) {
	ctx := context.Background()
	w := testWriter(t)

	// Clearing what was never written is fine, even without pxelinux.cfg.
	require.NoError(t, w.Clear(ctx, "aabbccddeeff"))

	require.NoError(t, w.Set(ctx, "aabbccddeeff", "x"))
	require.NoError(t, w.Clear(ctx, "AA:BB:CC:DD:EE:FF"))
	_, err := w.Read("aabbccddeeff")
	require.ErrorIs(t, err, fs.ErrNotExist)

	// And again.
	require.NoError(t, w.Clear(ctx, "aabbccddeeff"))
}

func TestWriterCanceledContext(t *testing.T) {
	w := testWriter(t)
	require.NoError(t, w.Set(context.Background(), "aabbccddeeff", "old"))

	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	require.ErrorIs(t, w.Set(ctx, "aabbccddeeff", "new"), context.Canceled)
	require.ErrorIs(t, w.Clear(ctx, "aabbccddeeff"), context.Canceled)

	got, err := w.Read("aabbccddeeff")
	require.NoError(t, err)
	require.Equal(t, "old", got, "a canceled Set or Clear changed the file")
}

// TestWriterAtomicReplace rewrites a large file many times while readers
// read it in a loop: every read must be one of the two complete versions.
func TestWriterAtomicReplace(t *testing.T) {
	ctx := context.Background()
	w := testWriter(t)
	const size = 1 << 20
	versions := []string{
		strings.Repeat("A", size-len(IPAddressToken)) + IPAddressToken,
		strings.Repeat("B", size/2) + IPAddressToken + strings.Repeat("b", size/2),
	}
	want := map[string]bool{}
	for _, v := range versions {
		want[strings.ReplaceAll(v, IPAddressToken, "10.0.0.5")] = true
	}
	require.NoError(t, w.Set(ctx, "aabbccddeeff", versions[0]))
	p, err := w.Path("aabbccddeeff")
	require.NoError(t, err)

	var (
		stop     atomic.Bool
		reads    atomic.Int64
		bad      atomic.Int64
		badFirst atomic.Value // string describing the first bad read
		wg       sync.WaitGroup
	)
	for range 4 {
		wg.Add(1)
		// Exits when the writer below sets stop.
		go func() {
			defer wg.Done()
			for !stop.Load() {
				b, err := os.ReadFile(p)
				reads.Add(1)
				switch {
				case err != nil:
					bad.Add(1)
					badFirst.CompareAndSwap(nil, "read error: "+err.Error())
				case !want[string(b)]:
					bad.Add(1)
					badFirst.CompareAndSwap(nil, describe(b))
				}
			}
		}()
	}
	for i := range 40 {
		require.NoError(t, w.Set(ctx, "aabbccddeeff", versions[i%2]))
	}
	// Let the readers see the final version at least once more each.
	require.Eventually(t, func() bool { return reads.Load() >= 8 }, testWait, testPoll)
	stop.Store(true)
	wg.Wait()

	require.Zero(t, bad.Load(), "%d of %d reads saw a partial file; first: %v", bad.Load(), reads.Load(), badFirst.Load())
}

func describe(b []byte) string {
	return fmt.Sprintf("unexpected contents: %d bytes starting %q, %d substitutions",
		len(b), b[:min(len(b), 16)], bytes.Count(b, []byte("10.0.0.5")))
}
