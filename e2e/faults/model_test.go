package faults

import (
	"math"
	"testing"
	"time"

	"github.com/anishathalye/porcupine"
	"github.com/stretchr/testify/require"
)

// The checker's request model, on histories written by hand (this test
// needs no root and runs with make test).
func TestRequestModel(t *testing.T) {
	t0 := time.Unix(1000, 0)
	at := func(s int) time.Time { return t0.Add(time.Duration(s) * time.Second) }
	o := func(client int, kind opKind, from, to int, out outcome, state string) op {
		return op{client: client, kind: kind, req: 7, key: "k", start: at(from), end: at(to), out: out, state: state}
	}
	tests := []struct {
		name string
		ops  []op
		ok   bool
	}{
		{"create, read, return, read", []op{
			o(0, opCreate, 0, 1, outOK, ""), o(0, opRead, 2, 3, outOK, "pending"),
			o(0, opReturn, 4, 5, outOK, ""), o(1, opRead, 6, 7, outOK, "closed"),
		}, true},
		{"a read after an acknowledged return sees it open", []op{
			o(0, opCreate, 0, 1, outOK, ""), o(0, opReturn, 2, 3, outOK, ""),
			o(1, opRead, 4, 5, outOK, "ready"),
		}, false},
		{"a read concurrent with the return may see it open", []op{
			o(0, opCreate, 0, 1, outOK, ""), o(0, opReturn, 2, 5, outOK, ""),
			o(1, opRead, 3, 4, outOK, "ready"), o(1, opRead, 6, 7, outOK, "closed"),
		}, true},
		{"a return of unknown outcome may take effect later", []op{
			o(0, opCreate, 0, 1, outOK, ""), o(0, opReturn, 2, 3, outUnknown, ""),
			o(1, opRead, 4, 5, outOK, "ready"), o(1, opRead, 6, 7, outOK, "closed"),
		}, true},
		{"a state goes back", []op{
			o(0, opCreate, 0, 1, outOK, ""), o(0, opRead, 2, 3, outOK, "ready"),
			o(1, opRead, 4, 5, outOK, "pending"),
		}, false},
		{"a closed request fails", []op{
			o(0, opCreate, 0, 1, outOK, ""), o(0, opRead, 2, 3, outOK, "closed"),
			o(1, opRead, 4, 5, outOK, "failed_bad_image"),
		}, false},
		{"a failed request stays failed when returned", []op{
			o(0, opCreate, 0, 1, outOK, ""), o(0, opRead, 2, 3, outOK, "failed_bad_image"),
			o(0, opReturn, 4, 5, outOK, ""), o(1, opRead, 6, 7, outOK, "failed_bad_image"),
		}, true},
		{"the first attempt of a create counts", []op{
			o(0, opCreate, 0, 1, outUnknown, ""), o(1, opRead, 2, 3, outOK, "pending"),
			o(0, opCreate, 4, 5, outOK, ""),
		}, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			// Only the acknowledged create names the request.
			for i := range tc.ops {
				if tc.ops[i].kind == opCreate && tc.ops[i].out != outOK {
					tc.ops[i].req = 0
				}
			}
			bad, res := linearizable(tc.ops)
			if tc.ok {
				require.Equal(t, porcupine.Ok, res)
				require.Empty(t, bad)
			} else {
				require.Equal(t, porcupine.Illegal, res)
				require.Equal(t, []int64{7}, bad)
			}
		})
	}
}

func TestOverlapping(t *testing.T) {
	const held = math.MaxUint64
	require.Empty(t, overlapping(map[string][]span{
		"a": {{1, 10, 20}, {2, 20, 30}, {3, 30, held}}, // back to back
		"b": {{4, 5, 5}, {5, 5, 9}},                    // released and claimed by one entry
	}))
	require.Len(t, overlapping(map[string][]span{"a": {{1, 10, 20}, {2, 19, 30}}}), 1)
	require.Len(t, overlapping(map[string][]span{"a": {{3, 40, 50}, {1, 10, held}, {2, 25, 30}}}), 1, "a span still held")
}

func TestForward(t *testing.T) {
	require.Empty(t, forward([]string{"finding_device", "pending", "finding_device", "pending", "ready", "expired", "closed"}))
	require.Empty(t, forward([]string{"finding_device", "failed_device_not_found"}))
	require.NotEmpty(t, forward([]string{"pending", "ready", "pending"}))
	require.NotEmpty(t, forward([]string{"ready", "closed", "ready"}))
	require.NotEmpty(t, forward([]string{"failed_bad_image", "closed"}))
}
