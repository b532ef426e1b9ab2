package api

import "time"

// Roles of API tokens, weakest first; each may do what the ones before it
// may. See docs/api.md for the routes each role may call.
const (
	RoleReader   = "reader"
	RoleUser     = "user"
	RoleOperator = "operator"
	RoleAdmin    = "admin"
)

// Access policies (GET/POST /api/cluster/policy/).
const (
	PolicyOpen   = "open"
	PolicyStrict = "strict"
)

// Whoami answers /api/auth/whoami/: who the server takes the caller for.
type Whoami struct {
	// Name is the token's name, or "anonymous@<address>".
	Name      string `json:"name"`
	Role      string `json:"role,omitempty"` // "" for anonymous callers
	Anonymous bool   `json:"anonymous"`
	Policy    string `json:"policy"`
}

// TokenCreate is the body of POST /api/token/ (admin).
type TokenCreate struct {
	Name string `json:"name"`
	Role string `json:"role"`
}

// Token describes an API token; Secret is set only in the answer to its
// creation, the one time it is shown.
type Token struct {
	Name    string    `json:"name"`
	Role    string    `json:"role"`
	Created time.Time `json:"created"`
	Secret  string    `json:"token,omitempty"`
}

// TokenList answers GET /api/token/list/.
type TokenList struct {
	Tokens []Token `json:"tokens"`
}

// Policy is the body and the answer of /api/cluster/policy/.
type Policy struct {
	Policy string `json:"policy"`
}
