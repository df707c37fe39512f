// Package harness starts the real components pullgate's end-to-end tests need, all on
// 127.0.0.1 and all stopped when the test ends:
//
//   - StartRegistry: distribution's registry in-process (in-memory storage), optionally
//     behind bearer-token auth (a token server with a real signing key) or basic auth,
//     with request counters and middleware hooks to make it misbehave.
//   - DockerImage, OCIImage, OCIIndex, DockerIndex and Registry.Push*: content built
//     with go-containerregistry.
//   - StartProxy: pullgate's handler with upstream clients, given a gate explicitly
//     (gatetest.AllowAll for tests that are not about enforcement).
//   - Tool, Run, Skopeo, Crane: external programs with timeouts. A missing tool fails
//     the test with a hint to run hack/install-test-tools.sh; nothing is skipped.
package harness
