package engine

import (
	"math"
	"strings"
	"unicode"
	"unicode/utf8"

	"golang.org/x/text/unicode/norm"
)

// Limits of the contract (API.md §2).
const (
	MaxUsernameBytes    = 64
	MaxPasswordBytes    = 256
	MaxDescriptionBytes = 65500
	MaxNameBytes        = 64
	MaxLabelBytes       = 256
	MaxPreferenceBytes  = 65500
	MaxTimeoutSeconds   = math.MaxInt32
)

// Allowed values of the enumerated session settings.
var (
	DebugValues        = []string{"none", "max"}
	BinaryFormatValues = []string{"hex", "base64", "byteArray"}
	DataFormatValues   = []string{"arrays", "objects"}
	NumberFormatValues = []string{"number", "string"}
)

func oneOf(v string, allowed []string) bool {
	for _, a := range allowed {
		if v == a {
			return true
		}
	}
	return false
}

func validateUsername(field, name string) error {
	if len(name) < 1 || len(name) > MaxUsernameBytes {
		return invalid(field, "must be 1 to %d bytes", MaxUsernameBytes)
	}
	if !utf8.ValidString(name) {
		return invalid(field, "must be valid UTF-8")
	}
	for _, r := range name {
		if unicode.IsControl(r) {
			return invalid(field, "must not contain control characters")
		}
	}
	return nil
}

// validateNewUsername checks the name of a new account: validateUsername's rules, and no
// character a reader of a listing or a log would not see, so that a name hides nothing:
//   - no white space at either end, none but the plain space (U+0020) inside, and never two
//     spaces in a row (which HTML collapses);
//   - no invisible character: format characters (zero-width space, bidirectional controls,
//     the byte order mark), variation selectors, the other default-ignorable code points
//     (the combining grapheme joiner, the Hangul fillers) and the blank braille pattern;
//     except the zero-width non-joiner and joiner (U+200C, U+200D), which Persian and Indic
//     names need;
//   - the composed form (NFC) only, so that "josé" is one name, not two.
//
// Letters of other scripts that look alike (Cyrillic "а", Latin "a") stay allowed. Names
// that exist are looked up by validateUsername's rules alone.
func validateNewUsername(field, name string) error {
	if err := validateUsername(field, name); err != nil {
		return err
	}
	first, _ := utf8.DecodeRuneInString(name)
	last, _ := utf8.DecodeLastRuneInString(name)
	if unicode.IsSpace(first) || unicode.IsSpace(last) {
		return invalid(field, "must not begin or end with white space")
	}
	if strings.Contains(name, "  ") {
		return invalid(field, "must not contain two spaces in a row")
	}
	for _, r := range name {
		switch {
		case r != ' ' && unicode.IsSpace(r):
			return invalid(field, "must not contain white space other than U+0020 (got %U)", r)
		case invisible(r):
			return invalid(field, "must not contain invisible characters (got %U)", r)
		}
	}
	if !norm.NFC.IsNormalString(name) {
		return invalid(field, "must be in Unicode's composed form (NFC), as most keyboards write it")
	}
	return nil
}

// invisible reports whether r shows nothing where it stands (validateNewUsername).
func invisible(r rune) bool {
	switch r {
	case '\u200c', '\u200d': // zero-width non-joiner and joiner: needed in some scripts
		return false
	case '\u2800', '\u115f', '\u1160', '\u3164', '\uffa0': // blank braille, Hangul fillers
		return true
	}
	return unicode.In(r, unicode.Cf, unicode.Variation_Selector, unicode.Other_Default_Ignorable_Code_Point)
}

func validatePassword(field, password string) error {
	if len(password) > MaxPasswordBytes {
		return invalid(field, "must be at most %d bytes", MaxPasswordBytes)
	}
	return nil
}

func validateLength(field, v string, minBytes, maxBytes int) error {
	if len(v) < minBytes || len(v) > maxBytes {
		if minBytes == 0 {
			return invalid(field, "must be at most %d bytes", maxBytes)
		}
		return invalid(field, "must be %d to %d bytes", minBytes, maxBytes)
	}
	return nil
}

// Canonical returns the allowed value that v equals ignoring case, as enumerated session
// options are matched (in requests and in the configuration file), and whether there is one;
// v itself when there is none.
func Canonical(v string, allowed []string) (string, bool) {
	for _, a := range allowed {
		if strings.EqualFold(v, a) {
			return a, true
		}
	}
	return v, false
}

// canonical is Canonical's value.
func canonical(v string, allowed []string) string {
	c, _ := Canonical(v, allowed)
	return c
}

func validateEnum(field, v string, allowed []string) error {
	if v != "" && !oneOf(v, allowed) {
		return invalid(field, "must be one of %q", allowed)
	}
	return nil
}

// validateSettings checks complete settings (defaults or the result of applying options).
func validateSettings(s *SessionSettings) error {
	checks := []error{
		validateLength("description", s.Description, 0, MaxDescriptionBytes),
		validateLength("defaultApi", s.DefaultAPI, 0, MaxNameBytes),
		validateEnum("defaultDebug", s.DefaultDebug, DebugValues),
		validateLength("defaultDatabaseName", s.DefaultDatabaseName, 0, MaxNameBytes),
		validateLength("defaultOwnerName", s.DefaultOwnerName, 0, MaxNameBytes),
		validateEnum("defaultBinaryFormat", s.DefaultBinaryFormat, BinaryFormatValues),
		validateEnum("defaultResponseOptions.binaryFormat", s.DefaultResponseOptions.BinaryFormat, BinaryFormatValues),
		validateEnum("defaultResponseOptions.dataFormat", s.DefaultResponseOptions.DataFormat, DataFormatValues),
		validateEnum("defaultResponseOptions.numberFormat", s.DefaultResponseOptions.NumberFormat, NumberFormatValues),
	}
	for _, err := range checks {
		if err != nil {
			return err
		}
	}
	if s.IdleConnectionTimeoutSeconds < 0 || s.IdleConnectionTimeoutSeconds > MaxTimeoutSeconds {
		return invalid("idleConnectionTimeoutSeconds", "must be 0 (never) to %d", MaxTimeoutSeconds)
	}
	if s.IdleCursorTimeoutSeconds < -1 || s.IdleCursorTimeoutSeconds > MaxTimeoutSeconds {
		return invalid("idleCursorTimeoutSeconds", "must be -1 (never) to %d", MaxTimeoutSeconds)
	}
	if s.DefaultRetentionPeriod < 0 {
		return invalid("defaultRetentionPeriod", "must not be negative")
	}
	return nil
}

// SessionOptions are the optional session settings of createSession and alterSession; nil
// fields are left as they are (alterSession) or take the configured default (createSession).
type SessionOptions struct {
	// Description describes the session for troubleshooting (0–65,500 bytes).
	Description *string `json:"description,omitempty"`
	// DefaultAPI is the default "api" of the session's JSON actions (1–64 bytes).
	DefaultAPI *string `json:"defaultApi,omitempty"`
	// DefaultDebug is the default debug level of the session's actions: "none" or "max".
	DefaultDebug *string `json:"defaultDebug,omitempty"`
	// DefaultDatabaseName is the session's default database (1–64 bytes).
	DefaultDatabaseName *string `json:"defaultDatabaseName,omitempty"`
	// DefaultOwnerName is the session's default owner of tables (1–64 bytes).
	DefaultOwnerName *string `json:"defaultOwnerName,omitempty"`
	// DefaultBinaryFormat is how binary values are returned: "hex", "base64" or "byteArray".
	DefaultBinaryFormat *string `json:"defaultBinaryFormat,omitempty"`
	// DefaultResponseOptions are the default responseOptions of the session's actions; only
	// the members given change.
	DefaultResponseOptions *ResponseOptions `json:"defaultResponseOptions,omitempty"`
	// IdleConnectionTimeoutSeconds: seconds without a call before the session ends; 0 = never.
	IdleConnectionTimeoutSeconds *int64 `json:"idleConnectionTimeoutSeconds,omitempty"`
	// IdleCursorTimeoutSeconds: seconds a cursor stays open; -1 = never.
	IdleCursorTimeoutSeconds *int64 `json:"idleCursorTimeoutSeconds,omitempty"`
}

// apply validates the options given and applies them to s. The enumerated values are
// matched ignoring case, as the FairCom documents say of them, and stored as the spec
// spells them ("BYTEARRAY" is "byteArray").
func (o *SessionOptions) apply(s *SessionSettings) error {
	setString := func(dst *string, v *string) {
		if v != nil {
			*dst = *v
		}
	}
	canon := func(v *string, allowed []string) *string {
		if v == nil {
			return nil
		}
		c := canonical(*v, allowed)
		return &c
	}
	debug, binary := canon(o.DefaultDebug, DebugValues), canon(o.DefaultBinaryFormat, BinaryFormatValues)
	// Names given explicitly must not be empty, unlike defaults which may be unset.
	for _, n := range []struct {
		field string
		v     *string
	}{{"defaultApi", o.DefaultAPI}, {"defaultDatabaseName", o.DefaultDatabaseName}, {"defaultOwnerName", o.DefaultOwnerName}} {
		if n.v != nil {
			if err := validateLength(n.field, *n.v, 1, MaxNameBytes); err != nil {
				return err
			}
		}
	}
	// Values given explicitly must be one of the spec's, "" included: an unset default stays
	// unset only when the option is left out.
	for _, n := range []struct {
		field   string
		v       *string
		allowed []string
	}{{"defaultDebug", debug, DebugValues}, {"defaultBinaryFormat", binary, BinaryFormatValues}} {
		if n.v != nil && !oneOf(*n.v, n.allowed) {
			return invalid(n.field, "must be one of %q", n.allowed)
		}
	}
	setString(&s.Description, o.Description)
	setString(&s.DefaultAPI, o.DefaultAPI)
	setString(&s.DefaultDebug, debug)
	setString(&s.DefaultDatabaseName, o.DefaultDatabaseName)
	setString(&s.DefaultOwnerName, o.DefaultOwnerName)
	setString(&s.DefaultBinaryFormat, binary)
	if r := o.DefaultResponseOptions; r != nil {
		// An empty value is no value: it leaves the setting as it was.
		if r.BinaryFormat != "" {
			s.DefaultResponseOptions.BinaryFormat = canonical(r.BinaryFormat, BinaryFormatValues)
		}
		if r.DataFormat != "" {
			s.DefaultResponseOptions.DataFormat = canonical(r.DataFormat, DataFormatValues)
		}
		if r.NumberFormat != "" {
			s.DefaultResponseOptions.NumberFormat = canonical(r.NumberFormat, NumberFormatValues)
		}
	}
	if o.IdleConnectionTimeoutSeconds != nil {
		s.IdleConnectionTimeoutSeconds = *o.IdleConnectionTimeoutSeconds
	}
	if o.IdleCursorTimeoutSeconds != nil {
		s.IdleCursorTimeoutSeconds = *o.IdleCursorTimeoutSeconds
	}
	return validateSettings(s)
}
