package rpc

import (
	"context"

	"github.com/sessiond/sessiond/engine"
)

// CreateSessionParams are the params of createSession.
type CreateSessionParams struct {
	// Username is the account name of a user or application (1–64 bytes, case-insensitive).
	Username string `json:"username" jsonschema:"minLength=1,maxLength=64"`
	// Password authenticates the account (0–256 bytes).
	Password string `json:"password" jsonschema:"maxLength=256"`
	engine.SessionOptions
	// PermanentSession creates a permanent session whose authToken works as an API key and
	// never expires. It needs enablePermanentJsonApiSessions on the server.
	PermanentSession FlexBool `json:"permanentSession,omitempty"`
}

// AlterSessionParams are the params of alterSession: every setting given is changed.
type AlterSessionParams struct {
	// AuthToken is the token of the session to alter.
	AuthToken string `json:"authToken"`
	engine.SessionOptions
	// PermanentSession may only repeat the session's current kind: a temporary session can
	// never become permanent, nor a permanent one temporary.
	PermanentSession *FlexBool `json:"permanentSession,omitempty"`
}

// TokenParams carry only the caller's authToken.
type TokenParams struct {
	// AuthToken is the caller's session token.
	AuthToken string `json:"authToken"`
}

// PingSessionParams are the params of pingSession.
type PingSessionParams struct {
	// AuthToken, when given, is checked and its session kept alive. Left out or null, there is
	// no token; an authToken member given as "" is an invalid token.
	AuthToken string `json:"authToken,omitempty"`
}

// DescribeSessionsParams are the params of describeSessions.
type DescribeSessionsParams struct {
	// AuthToken is the caller's session token.
	AuthToken string `json:"authToken"`
	// AuthTokens names sessions by token; their objects carry the token.
	AuthTokens []string `json:"authTokens,omitempty"`
	// SessionIds names sessions by their public id.
	SessionIds []string `json:"sessionIds,omitempty"`
}

// ListSessionsParams are the params of listSessions.
type ListSessionsParams struct {
	// AuthToken is the caller's session token.
	AuthToken string `json:"authToken"`
	// UsernameFilter lists only the sessions of these accounts.
	UsernameFilter []string `json:"usernameFilter,omitempty"`
}

// RevokeSessionsParams are the params of revokeSessions: exactly one of sessionIds,
// usernames or allOthers.
type RevokeSessionsParams struct {
	// AuthToken is the caller's session token.
	AuthToken string `json:"authToken"`
	// SessionIds ends these sessions (those the caller may see).
	SessionIds []string `json:"sessionIds,omitempty"`
	// Usernames ends every session, permanent ones too, of these accounts (admins; others
	// may name only themselves).
	Usernames []string `json:"usernames,omitempty"`
	// AllOthers ends every other session of the caller's account, permanent ones too.
	AllOthers bool `json:"allOthers,omitempty"`
}

// SessionWithToken is the session object of a login or of an alteration: its token, which the
// caller has just received or presented, is always there.
type SessionWithToken struct {
	// AuthToken is the session's token.
	AuthToken string `json:"authToken"`
	Session
}

// Session is a session object.
type Session struct {
	// AuthToken is present only where the caller presented or has just received the token.
	AuthToken string `json:"authToken,omitempty"`
	// SessionId is the public, non-secret handle of the session, safe to list and revoke by.
	SessionId string `json:"sessionId"`
	// Username is the session's account.
	Username string `json:"username"`
	// Description describes the session for troubleshooting.
	Description string `json:"description"`
	// DefaultApi is the default "api" of the session's actions.
	DefaultApi string `json:"defaultApi"`
	// DefaultDebug is the default debug level: "none" or "max".
	DefaultDebug string `json:"defaultDebug"`
	// DefaultDatabaseName is the session's default database.
	DefaultDatabaseName string `json:"defaultDatabaseName"`
	// DefaultOwnerName is the session's default owner of tables.
	DefaultOwnerName string `json:"defaultOwnerName"`
	// DefaultBinaryFormat is how binary values are returned: "hex", "base64" or "byteArray".
	DefaultBinaryFormat string `json:"defaultBinaryFormat"`
	// DefaultResponseOptions are the default responseOptions of the session's actions.
	DefaultResponseOptions engine.ResponseOptions `json:"defaultResponseOptions"`
	// IdleConnectionTimeoutSeconds: seconds without a call before the session ends (0 = never;
	// a permanent session reports -1).
	IdleConnectionTimeoutSeconds int64 `json:"idleConnectionTimeoutSeconds"`
	// IdleCursorTimeoutSeconds: seconds a cursor stays open (-1 = never).
	IdleCursorTimeoutSeconds int64 `json:"idleCursorTimeoutSeconds"`
	// PermanentSession is true for API keys, which never expire.
	PermanentSession bool `json:"permanentSession"`
	// Origin is the method that created the session: createSession or authenticate.
	Origin string `json:"origin"`
	// SessionStartTimestamp is when the session was created (UTC).
	SessionStartTimestamp Timestamp `json:"sessionStartTimestamp"`
	// SessionLastAccessedTimestamp is the last authenticated call (UTC).
	SessionLastAccessedTimestamp Timestamp `json:"sessionLastAccessedTimestamp"`
	// ExpiresAt is when the session ends if nothing extends it; null if it never does.
	ExpiresAt *Timestamp `json:"expiresAt"`
	// ClientAddress is the address the session was created from.
	ClientAddress string `json:"clientAddress"`
	// Hostname is the name of the server host that answered.
	Hostname string `json:"hostname"`
	// HostUuid identifies the server host and its store.
	HostUuid string `json:"hostUuid"`
	// HostIpAddresses are the server host's non-loopback addresses.
	HostIpAddresses []string `json:"hostIpAddresses"`
	// DefaultRetentionPolicy is the server's default retention policy (jsonActionApiDefaults).
	DefaultRetentionPolicy string `json:"defaultRetentionPolicy"`
	// DefaultRetentionUnit is the unit of defaultRetentionPeriod.
	DefaultRetentionUnit string `json:"defaultRetentionUnit"`
	// DefaultRetentionPeriod is how many retention units data is kept.
	DefaultRetentionPeriod int `json:"defaultRetentionPeriod"`
}

// SessionsResult is the result of describeSessions and listSessions.
type SessionsResult struct {
	// Sessions are the session objects, oldest first.
	Sessions []Session `json:"sessions"`
}

// RevokeResult is the result of revokeSessions.
type RevokeResult struct {
	// Revoked is how many sessions were ended.
	Revoked int `json:"revoked"`
}

// sessionWithToken is the session object of info, which carries its token.
func (s *Service) sessionWithToken(info engine.SessionInfo) SessionWithToken {
	return SessionWithToken{AuthToken: info.AuthToken, Session: s.sessionObject(info)}
}

func (s *Service) sessionObject(info engine.SessionInfo) Session {
	host := s.eng.Host()
	ips := host.IPAddresses
	if ips == nil {
		ips = []string{}
	}
	idle := info.Settings.IdleConnectionTimeoutSeconds
	if info.Permanent {
		idle = -1
	}
	return Session{
		AuthToken:                    info.AuthToken,
		SessionId:                    info.ID,
		Username:                     info.Username,
		Description:                  info.Settings.Description,
		DefaultApi:                   info.Settings.DefaultAPI,
		DefaultDebug:                 info.Settings.DefaultDebug,
		DefaultDatabaseName:          info.Settings.DefaultDatabaseName,
		DefaultOwnerName:             info.Settings.DefaultOwnerName,
		DefaultBinaryFormat:          info.Settings.DefaultBinaryFormat,
		DefaultResponseOptions:       info.Settings.DefaultResponseOptions,
		IdleConnectionTimeoutSeconds: idle,
		IdleCursorTimeoutSeconds:     info.Settings.IdleCursorTimeoutSeconds,
		PermanentSession:             info.Permanent,
		Origin:                       string(info.Origin),
		SessionStartTimestamp:        Timestamp(info.CreatedAt),
		SessionLastAccessedTimestamp: Timestamp(info.LastAccessedAt),
		ExpiresAt:                    timestampOrNil(info.ExpiresAt),
		ClientAddress:                info.ClientAddress,
		Hostname:                     host.Hostname,
		HostUuid:                     host.UUID,
		HostIpAddresses:              ips,
		DefaultRetentionPolicy:       info.Settings.DefaultRetentionPolicy,
		DefaultRetentionUnit:         info.Settings.DefaultRetentionUnit,
		DefaultRetentionPeriod:       info.Settings.DefaultRetentionPeriod,
	}
}

func (s *Service) sessionList(infos []engine.SessionInfo) SessionsResult {
	out := SessionsResult{Sessions: make([]Session, 0, len(infos))}
	for _, info := range infos {
		out.Sessions = append(out.Sessions, s.sessionObject(info))
	}
	return out
}

var tokenErrors = []int{CodeInvalidAuthToken}

var sessionMethods = []Method{
	method(Method{
		Name: "createSession", Family: "session", Auth: AuthCredentials,
		Summary:     "Log in with a username and password and start a session.",
		Description: "Returns the session object with its authToken. Settings not given take the server's jsonActionApiDefaults. With permanentSession: true the token is an API key that never expires.",
		Errors:      []int{CodeInvalidCredentials, CodeSessionLimit, CodePermanentSessionsOff, CodeLoginThrottled},
	}, func(ctx context.Context, s *Service, p *CreateSessionParams, client engine.Client) (SessionWithToken, error) {
		info, err := s.eng.CreateSession(ctx, engine.CreateSessionRequest{
			Username: p.Username, Password: p.Password, Options: p.SessionOptions,
			Permanent: bool(p.PermanentSession), Client: client,
		})
		if err != nil {
			return SessionWithToken{}, err
		}
		return s.sessionWithToken(info), nil
	}),
	method(Method{
		Name: "alterSession", Family: "session", Auth: AuthToken, TokenField: "authToken",
		Summary:     "Change the settings of the caller's session.",
		Description: "Every setting given is changed; the others stay. A temporary session can never become permanent.",
		Errors:      []int{CodeInvalidAuthToken, CodePermanentNotAllowed},
	}, func(ctx context.Context, s *Service, p *AlterSessionParams, _ engine.Client) (SessionWithToken, error) {
		var permanent *bool
		if p.PermanentSession != nil {
			v := bool(*p.PermanentSession)
			permanent = &v
		}
		info, err := s.eng.AlterSession(ctx, p.AuthToken, p.SessionOptions, permanent)
		if err != nil {
			return SessionWithToken{}, err
		}
		return s.sessionWithToken(info), nil
	}),
	method(Method{
		Name: "deleteSession", Family: "session", Auth: AuthToken, TokenField: "authToken",
		Summary:     "End the caller's session (log out).",
		Description: "Deleting a session that is already gone is not an error; a malformed token is.",
		Errors:      tokenErrors,
	}, func(ctx context.Context, s *Service, p *TokenParams, _ engine.Client) (Empty, error) {
		return Empty{}, s.eng.DeleteSession(ctx, p.AuthToken)
	}),
	method(Method{
		Name: "describeSessions", Family: "session", Auth: AuthToken, TokenField: "authToken", Quick: true, NeverWaits: true,
		Summary:     "Describe sessions by token or id, or every session the caller may see.",
		Description: "Admins see every session, other accounts only their own. Sessions the caller may not see, and names that match nothing, are left out.",
		Errors:      tokenErrors,
	}, func(ctx context.Context, s *Service, p *DescribeSessionsParams, _ engine.Client) (SessionsResult, error) {
		if len(p.AuthTokens) == 0 && len(p.SessionIds) == 0 && InEventLoop(ctx) {
			return SessionsResult{}, ErrWouldWait // every session the caller may see
		}
		infos, err := s.eng.DescribeSessions(ctx, p.AuthToken, p.AuthTokens, p.SessionIds)
		if err != nil {
			return SessionsResult{}, err
		}
		return s.sessionList(infos), nil
	}),
	method(Method{
		Name: "listSessions", Family: "session", Auth: AuthToken, TokenField: "authToken",
		Summary:     "List the sessions the caller may see, without their tokens.",
		Description: "Admins see every session (optionally only those of usernameFilter), other accounts only their own.",
		Errors:      tokenErrors,
	}, func(ctx context.Context, s *Service, p *ListSessionsParams, _ engine.Client) (SessionsResult, error) {
		infos, err := s.eng.ListSessions(ctx, p.AuthToken, p.UsernameFilter)
		if err != nil {
			return SessionsResult{}, err
		}
		return s.sessionList(infos), nil
	}),
	method(Method{
		Name: "pingSession", Family: "session", Auth: AuthOptionalToken, TokenField: "authToken", Quick: true, NeverWaits: true,
		Summary:     "Check that the server is up and, with a token, keep that session alive.",
		Description: "Without a token (authToken left out) it always succeeds. With one, an invalid token, the empty string included, is error 12031.",
		Errors:      tokenErrors,
	}, func(ctx context.Context, s *Service, p *PingSessionParams, _ engine.Client) (Empty, error) {
		return Empty{}, s.eng.PingSession(ctx, p.AuthToken)
	}),
	method(Method{
		Name: "revokeSessions", Family: "session", Auth: AuthToken, TokenField: "authToken",
		Summary:     "End sessions by id, all sessions of some accounts, or all the caller's other sessions.",
		Description: "Give exactly one of sessionIds, usernames or allOthers. Returns how many sessions were ended.",
		Errors:      []int{CodeInvalidAuthToken, CodePermissionDenied},
	}, func(ctx context.Context, s *Service, p *RevokeSessionsParams, _ engine.Client) (RevokeResult, error) {
		n, err := s.eng.RevokeSessions(ctx, p.AuthToken, engine.RevokeRequest{SessionIDs: p.SessionIds, Usernames: p.Usernames, AllOthers: p.AllOthers})
		return RevokeResult{Revoked: n}, err
	}),
}
