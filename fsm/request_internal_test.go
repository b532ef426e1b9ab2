package fsm

import (
	"testing"

	"github.com/stretchr/testify/require"
)

// Boot configs compare as parsed JSON; what does not parse, or is empty or
// null, counts as {} (as the original).
func TestSameBootConfig(t *testing.T) {
	tests := []struct {
		a, b string
		want bool
	}{
		{`{"b2gbase": "x"}`, `{"b2gbase":"x"}`, true},
		{`{"a": 1, "b": 2}`, `{"b": 2, "a": 1}`, true},
		{`{"a": 1}`, `{"a": "1"}`, false},
		{`{"a": 1}`, `{"a": 1, "b": null}`, false},
		{``, `{}`, true},
		{`null`, `{}`, true},
		{`not json`, `{}`, true},
		{`not json`, `{"a": 1}`, false},
		{`{"a": [1, 2]}`, `{"a":[1,2]}`, true},
		{`{"a": [1, 2]}`, `{"a":[2,1]}`, false},
	}
	for _, tc := range tests {
		require.Equal(t, tc.want, sameBootConfig(tc.a, tc.b), "sameBootConfig(%q, %q)", tc.a, tc.b)
		require.Equal(t, tc.want, sameBootConfig(tc.b, tc.a), "sameBootConfig(%q, %q)", tc.b, tc.a)
	}
}
