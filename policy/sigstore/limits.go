package sigstore

// Bounds on untrusted input that is counted or buffered here. The byte sizes of layers,
// annotations and bundles are bounded by the callers that fetch them; these bound the
// work done per signature.
const (
	// maxChainCertificates bounds the certificates read from a chain annotation or a
	// bundle's certificate chain. Real chains have two to four; containers/image has no
	// bound, but a chain of more than 32 certificates is an attack, not a signature.
	maxChainCertificates = 32

	// maxTlogEntries bounds the transparency-log entries of one bundle (each costs an
	// ECDSA verification per Rekor key). sigstore-go uses the same value.
	maxTlogEntries = 32

	// maxStatementSubjects bounds the subjects of one in-toto statement; cosign writes one.
	maxStatementSubjects = 1024

	// maxBundleBytes bounds a bundle given to VerifyBundle: the same 4 MiB containers/image
	// allows for one signature.
	maxBundleBytes = 4 << 20
)
