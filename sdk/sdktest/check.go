package sdktest

import (
	"encoding/json"
	"sync"

	"github.com/sessiond/sessiond/schemas"
)

// ScenarioMethods are the methods the SDK scenario must call, and ScenarioErrors the error
// codes it must see come back: a bad password (450), a bad token (12031) and invalid params
// (-32602).
var (
	ScenarioMethods = []string{"createSession", "createAccount", "describeSessions", "alterSession",
		"setUserPreference", "authenticate", "getUserPreference", "logout", "listSessions",
		"revokeSessions", "pingSession", "deleteSession", "dropAccounts", "rpc.discover"}
	ScenarioErrors = []int{450, 12031, -32602}
)

// CheckParams checks the params of a call of method against the method's params schema, as
// the server reads them: bearer is the HTTP bearer token the call was sent with, if any,
// which the server puts in the method's token member (x-token-field) when the params leave
// it out.
func CheckParams(method string, params json.RawMessage, bearer string) error {
	return schemas.ValidateParams(method, withBearer(method, params, bearer))
}

// CheckResult checks the result of a successful call of method against its result schema.
func CheckResult(method string, result json.RawMessage) error {
	return schemas.ValidateResult(method, result)
}

func withBearer(method string, params json.RawMessage, bearer string) json.RawMessage {
	var members map[string]json.RawMessage
	if bearer == "" || json.Unmarshal(params, &members) != nil {
		return params
	}
	field := tokenFields()[method]
	if _, ok := members[field]; ok || field == "" {
		return params
	}
	if members == nil {
		members = map[string]json.RawMessage{}
	}
	members[field], _ = json.Marshal(bearer)
	out, _ := json.Marshal(members)
	return out
}

// tokenFields is the x-token-field of each method in the OpenRPC document.
var tokenFields = sync.OnceValue(func() map[string]string {
	var doc struct {
		Methods []struct {
			Name       string `json:"name"`
			TokenField string `json:"x-token-field"`
		} `json:"methods"`
	}
	if err := json.Unmarshal(schemas.OpenRPC, &doc); err != nil {
		panic("sdktest: schemas.OpenRPC: " + err.Error())
	}
	fields := map[string]string{}
	for _, m := range doc.Methods {
		fields[m.Name] = m.TokenField
	}
	return fields
})
