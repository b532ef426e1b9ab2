package cluster

import (
	"crypto/sha256"
	"crypto/subtle"
	"net/http"
	"strings"

	"github.com/mozpool/mozpool/api"
)

// CheckToken returns ErrUnauthorized unless the request headers h carry
// token, as api.HeaderToken or as "Authorization: Bearer <token>" (the
// scheme in any case). An empty token accepts every caller: the cluster
// runs without one. It is the check of the internal endpoints between
// nodes (the API's own routes go through httpapi's permission table).
func CheckToken(h http.Header, token string) error {
	if token == "" {
		return nil
	}
	got := h.Get(api.HeaderToken)
	if got == "" {
		if a := h.Get("Authorization"); len(a) > 7 && strings.EqualFold(a[:7], "bearer ") {
			got = strings.TrimSpace(a[7:])
		}
	}
	// Both sides are hashed first so that the comparison takes the same
	// time whatever the length of the guess.
	g, w := sha256.Sum256([]byte(got)), sha256.Sum256([]byte(token))
	if got == "" || subtle.ConstantTimeCompare(g[:], w[:]) != 1 {
		return ErrUnauthorized
	}
	return nil
}
