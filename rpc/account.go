package rpc

import (
	"context"

	"github.com/sessiond/sessiond/engine"
)

// CreateAccountParams are the params of createAccount.
type CreateAccountParams struct {
	// AuthToken is the caller's session token; the caller must be an admin.
	AuthToken string `json:"authToken"`
	// Username of the new account (1–64 bytes; unique case-insensitively; in composed form
	// (NFC), with no control or invisible characters but the zero-width joiner and non-joiner,
	// no white space at either end, none but U+0020 inside, and no two spaces in a row).
	Username string `json:"username" jsonschema:"minLength=1,maxLength=64"`
	// Password of the new account (0–256 bytes), stored only as an argon2id hash.
	Password string `json:"password" jsonschema:"maxLength=256"`
	// AccountDescription describes the account.
	AccountDescription string `json:"accountDescription,omitempty" jsonschema:"maxLength=65500"`
	// Roles is ["admin"] for an administrator, or empty.
	Roles []string `json:"roles,omitempty" jsonschema:"maxItems=1,uniqueItems=true"`
	// LockoutAfterNFailedAttempts locks the account after this many failed logins in a row
	// (0 = never; default 5).
	LockoutAfterNFailedAttempts *int `json:"lockoutAfterNFailedAttempts,omitempty" jsonschema:"minimum=0,maximum=1000"`
	// LockoutWaitMinutes is how long a locked account stays locked (default 15).
	LockoutWaitMinutes *int `json:"lockoutWaitMinutes,omitempty" jsonschema:"minimum=0,maximum=525600"`
}

// AlterAccountParams are the params of alterAccount: every field given is changed.
type AlterAccountParams struct {
	// AuthToken is the caller's session token: an admin, or the account itself.
	AuthToken string `json:"authToken"`
	// Username names the account to change.
	Username string `json:"username" jsonschema:"minLength=1,maxLength=64"`
	// Password is the new password. It ends the account's other temporary sessions.
	Password *string `json:"password,omitempty" jsonschema:"maxLength=256"`
	// CurrentPassword is required when an account changes its own password.
	CurrentPassword *string `json:"currentPassword,omitempty" jsonschema:"maxLength=256"`
	// AccountDescription describes the account.
	AccountDescription *string `json:"accountDescription,omitempty" jsonschema:"maxLength=65500"`
	// Roles replaces the account's roles (admins only): ["admin"] or [].
	Roles []string `json:"roles,omitempty" jsonschema:"maxItems=1,uniqueItems=true"`
	// LockoutAfterNFailedAttempts (admins only): 0 = never lock.
	LockoutAfterNFailedAttempts *int `json:"lockoutAfterNFailedAttempts,omitempty" jsonschema:"minimum=0,maximum=1000"`
	// LockoutWaitMinutes (admins only).
	LockoutWaitMinutes *int `json:"lockoutWaitMinutes,omitempty" jsonschema:"minimum=0,maximum=525600"`
}

// UsernamesParams name accounts.
type UsernamesParams struct {
	// AuthToken is the caller's session token.
	AuthToken string `json:"authToken"`
	// Usernames names the accounts (case-insensitive).
	Usernames []string `json:"usernames"`
}

// DescribeAccountsParams are the params of describeAccounts.
type DescribeAccountsParams struct {
	// AuthToken is the caller's session token.
	AuthToken string `json:"authToken"`
	// Usernames names the accounts; omitted or empty means the caller's own.
	Usernames []string `json:"usernames,omitempty"`
}

// ListAccountsParams are the params of listAccounts.
type ListAccountsParams struct {
	// AuthToken is the caller's session token; the caller must be an admin.
	AuthToken string `json:"authToken"`
	// PartialNames lists only accounts whose username starts with one of these
	// (case-insensitive).
	PartialNames []string `json:"partialNames,omitempty"`
}

// Account is an account object. It never carries a password or its hash.
type Account struct {
	// Username is the account name as created; it matches case-insensitively.
	Username string `json:"username"`
	// AccountDescription describes the account.
	AccountDescription string `json:"accountDescription"`
	// Roles is ["admin"] for administrators, [] otherwise.
	Roles []string `json:"roles"`
	// LockoutAfterNFailedAttempts: failed logins in a row that lock the account (0 = never).
	LockoutAfterNFailedAttempts int `json:"lockoutAfterNFailedAttempts"`
	// LockoutWaitMinutes is how long a lockout lasts.
	LockoutWaitMinutes int `json:"lockoutWaitMinutes"`
	// LockedUntil is when a lockout ends; null when the account is not locked.
	LockedUntil *Timestamp `json:"lockedUntil"`
	// LastLoginTimestamp is the last successful login; null if never.
	LastLoginTimestamp *Timestamp `json:"lastLoginTimestamp"`
	// CreatedTimestamp is when the account was created.
	CreatedTimestamp Timestamp `json:"createdTimestamp"`
}

// AccountsResult is the result of listAccounts and describeAccounts.
type AccountsResult struct {
	// Accounts are the account objects, sorted by username.
	Accounts []Account `json:"accounts"`
}

// DropResult is the result of dropAccounts.
type DropResult struct {
	// Dropped lists the (lower-cased) usernames dropped; unknown names are left out.
	Dropped []string `json:"dropped"`
}

func (s *Service) accountObject(a *engine.Account) Account {
	roles := a.Roles
	if roles == nil {
		roles = []string{}
	}
	var locked *Timestamp
	if s.eng.Now().Before(a.LockedUntil) {
		locked = timestampOrNil(a.LockedUntil)
	}
	return Account{
		Username:                    a.Username,
		AccountDescription:          a.Description,
		Roles:                       roles,
		LockoutAfterNFailedAttempts: a.LockoutAfter,
		LockoutWaitMinutes:          a.LockoutWaitMinutes,
		LockedUntil:                 locked,
		LastLoginTimestamp:          timestampOrNil(a.LastLoginAt),
		CreatedTimestamp:            Timestamp(a.CreatedAt),
	}
}

func (s *Service) accountList(accounts []*engine.Account) AccountsResult {
	out := AccountsResult{Accounts: make([]Account, 0, len(accounts))}
	for _, a := range accounts {
		out.Accounts = append(out.Accounts, s.accountObject(a))
	}
	return out
}

var accountMethods = []Method{
	method(Method{
		Name: "createAccount", Family: "account", Auth: AuthToken, TokenField: "authToken",
		Summary: "Create an account (admins only).",
		Errors:  []int{CodeInvalidAuthToken, CodePermissionDenied, CodeAccountExists},
	}, func(ctx context.Context, s *Service, p *CreateAccountParams, _ engine.Client) (Account, error) {
		a, err := s.eng.CreateAccount(ctx, p.AuthToken, engine.CreateAccountRequest{
			Username: p.Username, Password: p.Password, Description: p.AccountDescription, Roles: p.Roles,
			LockoutAfter: p.LockoutAfterNFailedAttempts, LockoutWaitMinutes: p.LockoutWaitMinutes,
		})
		if err != nil {
			return Account{}, err
		}
		return s.accountObject(a), nil
	}),
	method(Method{
		Name: "alterAccount", Family: "account", Auth: AuthToken, TokenField: "authToken",
		Summary:     "Change an account: admins any account, others their own description and password.",
		Description: "Changing a password ends the account's other temporary sessions and clears a lockout. An account changing its own password must give currentPassword; a wrong one counts as a failed login (lockout, throttling).",
		Errors:      []int{CodeInvalidAuthToken, CodePermissionDenied, CodeAccountNotFound, CodeLastAdmin, CodeCurrentPasswordWrong, CodeLoginThrottled},
	}, func(ctx context.Context, s *Service, p *AlterAccountParams, client engine.Client) (Account, error) {
		a, err := s.eng.AlterAccount(ctx, p.AuthToken, engine.AlterAccountRequest{
			Username: p.Username, Password: p.Password, CurrentPassword: p.CurrentPassword,
			Description: p.AccountDescription, Roles: p.Roles,
			LockoutAfter: p.LockoutAfterNFailedAttempts, LockoutWaitMinutes: p.LockoutWaitMinutes,
			Client: client,
		})
		if err != nil {
			return Account{}, err
		}
		return s.accountObject(a), nil
	}),
	method(Method{
		Name: "dropAccounts", Family: "account", Auth: AuthToken, TokenField: "authToken",
		Summary:     "Delete accounts and end all their sessions, permanent ones too (admins only).",
		Description: "Unknown usernames are skipped. Dropping the last admin account drops nothing and fails.",
		Errors:      []int{CodeInvalidAuthToken, CodePermissionDenied, CodeLastAdmin},
	}, func(ctx context.Context, s *Service, p *UsernamesParams, _ engine.Client) (DropResult, error) {
		dropped, err := s.eng.DropAccounts(ctx, p.AuthToken, p.Usernames)
		return DropResult{Dropped: dropped}, err
	}),
	method(Method{
		Name: "listAccounts", Family: "account", Auth: AuthToken, TokenField: "authToken",
		Summary: "List accounts, optionally by username prefix (admins only).",
		Errors:  []int{CodeInvalidAuthToken, CodePermissionDenied},
	}, func(ctx context.Context, s *Service, p *ListAccountsParams, _ engine.Client) (AccountsResult, error) {
		accounts, err := s.eng.ListAccounts(ctx, p.AuthToken, p.PartialNames)
		if err != nil {
			return AccountsResult{}, err
		}
		return s.accountList(accounts), nil
	}),
	method(Method{
		Name: "describeAccounts", Family: "account", Auth: AuthToken, TokenField: "authToken",
		Summary:     "Describe accounts: admins any, others only their own.",
		Description: "Unknown usernames are left out. Never returns a password or hash.",
		Errors:      []int{CodeInvalidAuthToken, CodePermissionDenied},
	}, func(ctx context.Context, s *Service, p *DescribeAccountsParams, _ engine.Client) (AccountsResult, error) {
		accounts, err := s.eng.DescribeAccounts(ctx, p.AuthToken, p.Usernames)
		if err != nil {
			return AccountsResult{}, err
		}
		return s.accountList(accounts), nil
	}),
}
