// Package harness starts the real components pullgate's end-to-end tests need, all on
// 127.0.0.1 and all stopped when the test ends:
//
//   - StartRegistry: distribution's registry in-process (in-memory storage), optionally
//     behind bearer-token auth (a token server with a real signing key) or basic auth,
//     with request and token counters, and WithMiddleware / RewriteResponses /
//     InterceptBlobGETs hooks to make it misbehave. ClosedAddr and HangingAddr stand
//     for upstreams that are down or hang.
//   - DockerImage, OCIImage, OCIIndex, DockerIndex and Registry.Push, PushIndex, Tag:
//     content built with go-containerregistry; Registry.Image and Registry.Index read
//     it back, ImageBlobs lists an image's config and layer digests.
//   - StartProxy and StartEnforcingProxy: pullgate assembled by internal/server.Build,
//     as serve assembles it, with a gate given explicitly (gatetest.AllowAll for tests
//     that are not about enforcement) or the policy gate; Proxy.Logs holds everything
//     it logged.
//   - PullImage, ReadImage (ReadWhole returns the error instead), NSTransport,
//     LayoutManifests, LayoutBlobs: a go-containerregistry client (with containerd's
//     ns= when wanted) and readers for what skopeo wrote.
//   - Tool, Run, Skopeo, SkopeoFails, SkopeoPullOK, Crane: external programs with
//     timeouts and a private HOME. A missing tool fails the test with a hint to run
//     hack/install-test-tools.sh; nothing is skipped.
//   - Content-store tests: ContentKeys (the content: section for PullgateConfig.Extra),
//     Upstream.Offline, Registry.Stop and Lookaside.Stop (an upstream or lookaside that
//     goes down), Pullgate.Stop, Pullgate.Kill and Pullgate.Reload (SIGTERM, SIGKILL,
//     SIGHUP), Throttle (a blob that sends half then hangs, or is paced), Request.Kind
//     and RequestsSince (what the upstream was asked), StoreBlobs, StoreBlobFile,
//     CheckStoreFiles, StoreFileTimes and FlipByte (the filesystem store's files),
//     RandomLayer and ImageOf (images that share layers).
//   - Cosign (real cosign, private HOME and keys), NewOracle (policypull, the
//     containers/image oracle from integration/oracle), TestCA and FakeRekor (offline
//     Fulcio and Rekor stand-ins), SigLayers / PutSigLayers / CopySignatures (cosign's
//     sha256-<hex>.sig manifests): the sigstore tests.
//
// A typical test:
//
//	reg := harness.StartRegistry(t, harness.WithTokenAuth("user", "secret"))
//	want := reg.Push(t, "team/app:v1", harness.OCIImage(t, 2, 4096, harness.LinuxAMD64))
//	p := harness.StartProxy(t, harness.ProxyOptions{
//		Upstreams:       []harness.Upstream{harness.UpstreamFor("registry.test", reg)},
//		DefaultUpstream: "registry.test",
//		Gate:            gatetest.AllowAll{},
//	})
//	got := harness.PullImage(t, p.Host+"/registry.test/team/app:v1")
//	harness.Skopeo(t, "copy", "--src-tls-verify=false", "docker://"+p.Host+"/team/app:v1", "oci:"+t.TempDir()+":v1")
package harness
