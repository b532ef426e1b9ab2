package fsm

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"time"
)

// Roles of API tokens, weakest first. A role may do everything the roles
// before it may.
const (
	RoleReader   = "reader"   // every read
	RoleUser     = "user"     // reader, and create, renew and return its own requests
	RoleOperator = "operator" // user, and devices, hardware, images, PXE configs, any request
	RoleAdmin    = "admin"    // operator, and membership, inventory, backup/restore, tokens, policy
)

// Roles lists the roles weakest first.
var Roles = []string{RoleReader, RoleUser, RoleOperator, RoleAdmin}

// Access policies of a cluster.
const (
	// PolicyOpen lets anonymous callers read and create, renew and return
	// requests (as clients that send no credentials expect); everything
	// else needs a token. The default.
	PolicyOpen = "open"
	// PolicyStrict makes every call need a token.
	PolicyStrict = "strict"
)

// MaxTokenNameLen is the longest token name.
const MaxTokenNameLen = 64

// Token is an API token: its name (the identity the audit trail records),
// its role and the SHA-256 of its secret (hex). The secret is not stored.
type Token struct {
	Name    string    `json:"name"`
	Role    string    `json:"role"`
	Hash    string    `json:"hash"`
	Created time.Time `json:"created"`
}

// HashToken is the hash a token's secret is stored and looked up by.
func HashToken(secret string) string {
	h := sha256.Sum256([]byte(secret))
	return hex.EncodeToString(h[:])
}

// ValidRole reports whether r names a role.
func ValidRole(r string) bool {
	for _, x := range Roles {
		if r == x {
			return true
		}
	}
	return false
}

// ValidTokenName checks a token name: 1–64 characters from
// [A-Za-z0-9._-] ('@' is kept for "anonymous@<address>").
func ValidTokenName(n string) error {
	if n == "" || len(n) > MaxTokenNameLen {
		return fmt.Errorf("%w: token name must be 1-%d characters", ErrInvalid, MaxTokenNameLen)
	}
	for _, c := range n {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_' || c == '.') {
			return fmt.Errorf("%w: token name %q may hold only letters, digits, '.', '-' and '_'", ErrInvalid, n)
		}
	}
	return nil
}

// TokenByHash returns the token whose secret hashes to hash (nil: none).
func (s *State) TokenByHash(hash string) *Token {
	for _, t := range s.Tokens {
		if t.Hash == hash {
			return t
		}
	}
	return nil
}

// EffectivePolicy is the cluster's policy, PolicyOpen when none was set.
func (s *State) EffectivePolicy() string {
	if s.Policy == "" {
		return PolicyOpen
	}
	return s.Policy
}

func (tx *txn) applyTokenCreate(b []byte) (any, error) {
	var c TokenCreate
	tx.decode(b, &c)
	if err := ValidTokenName(c.Name); err != nil {
		return nil, err
	}
	if !ValidRole(c.Role) {
		return nil, fmt.Errorf("%w: role %q (one of %v)", ErrInvalid, c.Role, Roles)
	}
	if raw, err := hex.DecodeString(c.Hash); err != nil || len(raw) != sha256.Size {
		return nil, fmt.Errorf("%w: token hash must be a hex SHA-256", ErrInvalid)
	}
	if _, ok := tx.s.Tokens[c.Name]; ok {
		return nil, fmt.Errorf("%w: token %q", ErrExists, c.Name)
	}
	if tx.s.TokenByHash(c.Hash) != nil {
		return nil, fmt.Errorf("%w: token hash", ErrExists)
	}
	t := &Token{Name: c.Name, Role: c.Role, Hash: c.Hash, Created: tx.at}
	tx.s.Tokens[c.Name] = t
	out := *t
	out.Hash = ""
	return &out, nil
}

func (tx *txn) applyTokenRevoke(b []byte) (any, error) {
	var c TokenRevoke
	tx.decode(b, &c)
	if _, ok := tx.s.Tokens[c.Name]; !ok {
		return nil, fmt.Errorf("%w: token %q", ErrUnknownToken, c.Name)
	}
	delete(tx.s.Tokens, c.Name)
	return nil, nil
}

func (tx *txn) applySetPolicy(b []byte) (any, error) {
	var c SetPolicy
	tx.decode(b, &c)
	if c.Policy != PolicyOpen && c.Policy != PolicyStrict {
		return nil, fmt.Errorf("%w: policy %q (open or strict)", ErrInvalid, c.Policy)
	}
	tx.s.Policy = c.Policy
	return nil, nil
}
