package httpapi

import (
	"fmt"
	"io"
	"net/http"
	"strconv"

	"github.com/julienschmidt/httprouter"

	"github.com/mozpool/mozpool/api"
)

// maxBackupBytes bounds a backup sent for restore (a lab of 10,000 devices
// is a few MB).
const maxBackupBytes = 64 << 20

// getBackup streams a snapshot of this node's state (token required: it
// holds the whole lab).
func (s *Server) getBackup(w http.ResponseWriter, r *http.Request, ps httprouter.Params) {
	// A backup through the node a client just wrote through holds the
	// write: wait for the writes this node forwarded.
	if err := s.ownWrites(r.Context()); err != nil {
		s.writeError(w, r, err)
		return
	}
	meta, rc, err := s.cluster.Backup()
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	defer rc.Close()
	w.Header().Set("Content-Type", "application/octet-stream")
	w.Header().Set("Content-Length", strconv.FormatInt(meta.Size, 10))
	w.Header().Set("Content-Disposition", fmt.Sprintf(`attachment; filename="mozpool-%d-%d.snap"`, meta.Term, meta.Index))
	w.Header().Set(api.HeaderSnapshotIndex, strconv.FormatUint(meta.Index, 10))
	w.Header().Set(api.HeaderSnapshotTerm, strconv.FormatUint(meta.Term, 10))
	w.WriteHeader(http.StatusOK)
	io.Copy(w, rc)
}

// postRestore replaces the cluster's state with the backup in the body.
func (s *Server) postRestore(r *http.Request, _ httprouter.Params) (any, error) {
	data, err := readBody(r, maxBackupBytes)
	if err != nil {
		return nil, err
	}
	if err := s.cluster.Restore(r.Context(), data); err != nil {
		return nil, err
	}
	return api.RestoreReply{RestoredBytes: len(data)}, nil
}
