package httpapi

import (
	"fmt"
	"net/http"
	"testing"

	"github.com/stretchr/testify/require"
)

// A callback_url that is not an absolute http(s) URL is a 400 and creates
// nothing; a good one is kept and shown in the request's details.
func TestPostRequestCallbackURL(t *testing.T) {
	for _, bad := range []any{"garbage", "ftp://host/x", "http://", "/relative", 17, true, map[string]any{}, "http://u:p@h/"} {
		e := newRequestEnv(t)
		b := b2gBody()
		b["callback_url"] = bad
		e.post("/api/device/any/request/", b).requireError(t, http.StatusBadRequest)
		require.Zero(t, e.requestCount(), "callback_url %v", bad)
	}

	e := newRequestEnv(t)
	b := b2gBody()
	b["callback_url"] = "http://ci.example.com:8080/hook?job=7"
	req := e.createRequest("any", b)
	require.Equal(t, "http://ci.example.com:8080/hook?job=7", req["callback_url"])
	details := e.getOK(fmt.Sprintf("/api/request/%d/details/", idOf(t, req["id"])))
	require.Equal(t, "http://ci.example.com:8080/hook?job=7", details["callback_url"])

	b = b2gBody()
	b["callback_url"] = nil
	req = e.createRequest("any", b)
	require.NotContains(t, req, "callback_url", "null is no callback")
}
