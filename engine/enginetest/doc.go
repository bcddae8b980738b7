// Package enginetest holds test helpers shared by the tests of the engine and of the packages
// built on it: a settable clock, so expiry is tested without sleeping.
//
// Only tests import it; the server and its stores never do (TestOnlyTestsImportHelpers checks).
package enginetest
