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
	// HeaderIndex carries, on every JSON answer of the API, the Raft index
	// the answering node had applied when it answered: its answer reflects
	// the state at least up to the write before it. A client remembers the
	// highest it has seen and sends it back in HeaderMinIndex.
	HeaderIndex = "X-Mozpool-Index"
	// HeaderMinIndex asks a node to answer only once it has applied at
	// least that index: it waits (a few seconds at most), then answers 503
	// with Retry-After. A value that is not a decimal integer is a 400. The
	// cluster and operator routes (/api/cluster/..., /api/version/) ignore
	// it.
	HeaderMinIndex = "X-Mozpool-Min-Index"
)

// QueryStale is the query parameter (any value, e.g. "?stale") with which a
// read asks for the node's local state even while the node has not caught
// up with the cluster since it started; without it such a node answers 503.
const QueryStale = "stale"

// MaxIdempotencyKeyLen bounds the Idempotency-Key header: every key is kept
// in the replicated state for a day.
const MaxIdempotencyKeyLen = 256
