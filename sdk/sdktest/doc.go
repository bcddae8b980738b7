// Package sdktest runs sessiond for the tests of the client SDKs in sdk/: it builds the
// sessiond command once per test binary ([Main]) and starts servers with the test
// configuration ([Start], [StdioCommand]), learning their addresses from the JSON log.
//
// Its own tests run the scenario of the TypeScript SDK (sdk/typescript/test) and of the Python
// SDK (sdk/python/tests) against a live server, and check every call those SDKs made against
// the method's params and result schemas, and install the TypeScript SDK by path into a
// scratch project, as its users do. They skip, saying why, when node, npm, the TypeScript
// SDK's node_modules or python3 are missing. The Go SDK runs the same scenario in
// sdk/go/scenario_test.go.
package sdktest
