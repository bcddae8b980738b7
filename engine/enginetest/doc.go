// Package enginetest holds test helpers shared by the tests of the engine and of the packages
// built on it: a settable clock, so expiry is tested without sleeping, and cheap hash
// parameters, so logins are not slowed by production argon2id.
//
// Only tests import it; the server and its stores never do (TestOnlyTestsImportHelpers checks).
package enginetest
