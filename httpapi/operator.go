package httpapi

import (
	"context"
	"net/http"

	"github.com/julienschmidt/httprouter"

	"github.com/mozpool/mozpool/api"
)

// leaderTransferer is the part of the cluster that hands leadership over
// (cluster.Node).
type leaderTransferer interface {
	TransferLeadership(ctx context.Context, id string) error
}

// postTransferLeader has the leader hand its leadership to the voter named
// by "id", or to the most up-to-date voter when it is absent or "".
func (s *Server) postTransferLeader(r *http.Request, _ httprouter.Params) (any, error) {
	var b api.TransferLeader
	if err := decodeObject(r, &b, maxBodyBytes); err != nil {
		return nil, err
	}
	tl, ok := s.cluster.(leaderTransferer)
	if !ok {
		return nil, errNotFound
	}
	if err := tl.TransferLeadership(r.Context(), b.ID); err != nil {
		return nil, err
	}
	return struct{}{}, nil
}
