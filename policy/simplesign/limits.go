package simplesign

// maxDearmoredSignatureSize bounds the binary message an ASCII-armored signature decodes
// to. It is the 4 MiB cap containers/image puts on a whole signature (lookaside body,
// signature API list); a real signature is a few hundred bytes.
const maxDearmoredSignatureSize = 4 << 20

// maxArmorHeaderLines bounds the "Key: value" lines after an armor's BEGIN line; gpg
// writes at most two (Version, Comment).
const maxArmorHeaderLines = 64
