package simplesign

import "time"

// maxDearmoredSignatureSize bounds the binary message an ASCII-armored signature decodes
// to. It is the 4 MiB cap containers/image puts on a whole signature (lookaside body,
// signature API list); a real signature is a few hundred bytes.
const maxDearmoredSignatureSize = 4 << 20

// maxArmorHeaderLines bounds the "Key: value" lines after an armor's BEGIN line; gpg
// writes at most two (Version, Comment).
const maxArmorHeaderLines = 64

// maxClockSkew is how far ahead of the verifier's clock a signature's creation time may
// be. gpg and gpgme set no bound (a signature dated a year ahead verifies with gpg
// 2.2.40 and skopeo 1.9.3), but go-crypto refuses any future date as "expired". A signer
// whose clock runs ahead is either drifting (seconds to minutes) or keeps local time in a
// clock read as UTC (at most 14 hours, UTC+14); a day covers both. Key and signature
// expiry are still judged at the verifier's clock, so the allowance cannot stretch a
// lifetime by more than this.
const maxClockSkew = 24 * time.Hour
