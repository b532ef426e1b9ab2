package api

// Header names used by the API.
const (
	// HeaderToken carries the cluster token that join, remove, restore,
	// backup and inventory sync require. The token may also be sent as
	// "Authorization: Bearer <token>".
	HeaderToken = "X-Mozpool-Token"
	// HeaderIdempotencyKey makes a retried write a no-op that returns the
	// first result (at most MaxIdempotencyKeyLen bytes).
	HeaderIdempotencyKey = "Idempotency-Key"
	// HeaderForwarded marks a call forwarded by another node, naming that
	// node: a node that is not the leader (or does not own the device)
	// answers it instead of forwarding it again.
	HeaderForwarded = "X-Mozpool-Forwarded"
	// HeaderServedBy names the node that answered, on every answer.
	HeaderServedBy = "X-Mozpool-Served-By"
	// HeaderSnapshotIndex and HeaderSnapshotTerm give the Raft index and
	// term of the snapshot a backup answer carries.
	HeaderSnapshotIndex = "X-Mozpool-Snapshot-Index"
	HeaderSnapshotTerm  = "X-Mozpool-Snapshot-Term"
)

// MaxIdempotencyKeyLen bounds the Idempotency-Key header: every key is kept
// in the replicated state for a day.
const MaxIdempotencyKeyLen = 256
