// Package proxy is pullgate's read-only OCI distribution API: it routes each /v2/ request
// to a configured upstream (DESIGN.md "Routing (contract)"), fetches and verifies the
// content through a content.Source, asks the admission.Gate before anything is served,
// and answers exactly what the upstream would have answered, byte for byte. It is the
// only package that makes the client's OCI error answer (*Error): its sources and the
// gate return errors that say what happened, and answer.go maps them.
//
// Writes are refused (405 UNSUPPORTED). Manifests are held in memory (capped at
// content.MaxManifestBytes), digest-checked and admitted before the first byte goes
// out; blobs are admitted before the upstream is contacted, then streamed and hashed on
// the fly, and a response whose bytes do not match the digest is aborted.
package proxy

import (
	// go-digest only knows the algorithms whose hash is linked in.
	_ "crypto/sha256"
	_ "crypto/sha512"
)
