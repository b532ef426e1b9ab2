package httpapi

import (
	"encoding/json"

	"github.com/mozpool/mozpool/fsm"
)

// callbackURLField returns the request body's callback_url ("" when
// absent or null), 400 unless it is an absolute http(s) URL.
func callbackURLField(body map[string]json.RawMessage) (string, error) {
	raw, ok := body["callback_url"]
	if !ok || string(raw) == "null" {
		return "", nil
	}
	var u string
	if err := json.Unmarshal(raw, &u); err != nil {
		return "", badRequestf("callback_url must be a string")
	}
	if err := fsm.ValidateCallbackURL(u); err != nil {
		return "", badRequestf("%s", err.Error())
	}
	return u, nil
}
