package fsm

import (
	"maps"
	"slices"
	"testing"

	"github.com/stretchr/testify/require"
)

// Every command type that has an applier has a body CheckCommand decodes.
func TestCheckCommand_KnowsEveryApplier(t *testing.T) {
	require.ElementsMatch(t, slices.Collect(maps.Keys(appliers)), slices.Collect(maps.Keys(commandBodies)))
	for typ, body := range commandBodies {
		b, err := Encode(typ, body())
		require.NoError(t, err)
		require.NoError(t, CheckCommand(b), "%s", typ)
	}
}
