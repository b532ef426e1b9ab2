package api

// Error is the body of every non-2xx JSON answer: {"error": message}. The
// internal endpoints between nodes (/_cluster/) add a machine-readable Code.
type Error struct {
	Error string `json:"error"`
	Code  string `json:"code,omitempty"`
}
