#!/usr/bin/env bash
# make-fixtures.sh OUTDIR: makes simple-signing fixtures with the real tools podman users
# have, for policy's interoperability test (interop_test.go runs this script):
#   - throwaway OpenPGP keys made by `gpg --batch` in $GNUPGHOME (which must be set, to a
#     short, empty, private directory: gpg-agent's socket path is length-limited; the caller
#     removes it and stops the agent with `gpgconf --kill all`);
#   - signatures made by `skopeo standalone-sign` over two manifests;
#   - a signed copy made by `skopeo copy --sign-by` into a dir: destination.
# Outputs in OUTDIR: trusted.gpg, trusted.asc, other.gpg, subkey.gpg (public keyrings);
# fingerprints (NAME=FPR lines: trusted, other, subkey, subkey_signing); manifest-a.json,
# manifest-b.json; a-trusted.sig, a-other.sig, a-subkey.sig, b-trusted.sig; copy/ (a dir:
# image with manifest.json and signature-1).
set -euo pipefail

out=${1:?usage: make-fixtures.sh OUTDIR}
: "${GNUPGHOME:?GNUPGHOME must name a short, empty directory}"
export GNUPGHOME
mkdir -p "$out"
chmod 700 "$GNUPGHOME"

# genkey NAME EMAIL PARAMS...: one unprotected key, made non-interactively.
genkey() {
  local name=$1 email=$2
  shift 2
  {
    echo "%no-protection"
    printf '%s\n' "$@"
    echo "Name-Real: $name"
    echo "Name-Email: $email"
    echo "Expire-Date: 0"
    echo "%commit"
  } | gpg --batch --quiet --gen-key 2>/dev/null
}
fingerprint() {
  gpg --batch --with-colons --list-keys "$1" | awk -F: '/^fpr/ {print $10; exit}'
}

genkey "Trusted Signer" trusted@example.test "Key-Type: RSA" "Key-Length: 2048" "Key-Usage: sign"
genkey "Other Signer" other@example.test "Key-Type: eddsa" "Key-Curve: ed25519" "Key-Usage: sign"
# A certify-only primary key with a signing subkey: gpg signs with the subkey.
genkey "Subkey Signer" subkey@example.test "Key-Type: eddsa" "Key-Curve: ed25519" "Key-Usage: cert" \
  "Subkey-Type: eddsa" "Subkey-Curve: ed25519" "Subkey-Usage: sign"

trusted=$(fingerprint trusted@example.test)
other=$(fingerprint other@example.test)
subkey=$(fingerprint subkey@example.test)
# The signing subkey's own fingerprint: older skopeo (containers/image < 5.2x with gpgme)
# reports a subkey signature under it instead of the primary key's.
subkey_signing=$(gpg --batch --with-colons --list-keys "$subkey" | awk -F: '/^sub/ {s = 1} s && /^fpr/ {print $10; exit}')
printf 'trusted=%s\nother=%s\nsubkey=%s\nsubkey_signing=%s\n' "$trusted" "$other" "$subkey" "$subkey_signing" >"$out/fingerprints"
gpg --batch --export "$trusted" >"$out/trusted.gpg"
gpg --batch --armor --export "$trusted" >"$out/trusted.asc"
gpg --batch --export "$other" >"$out/other.gpg"
gpg --batch --export "$subkey" >"$out/subkey.gpg"

# A small image in dir: layout: one gzip layer, its config, and a schema2 manifest.
src=$out/image-src
mkdir -p "$src" "$out/layer"
echo "pullgate interop fixture" >"$out/layer/hello.txt"
tar -C "$out/layer" --owner=0 --group=0 --mtime=@0 -cf "$out/layer.tar" hello.txt
gzip -n -c "$out/layer.tar" >"$out/layer.tar.gz"
diff_id=$(sha256sum "$out/layer.tar" | cut -d' ' -f1)
layer_digest=$(sha256sum "$out/layer.tar.gz" | cut -d' ' -f1)
layer_size=$(stat -c %s "$out/layer.tar.gz")
printf '{"architecture":"amd64","os":"linux","config":{},"rootfs":{"type":"layers","diff_ids":["sha256:%s"]}}' "$diff_id" >"$out/config.json"
config_digest=$(sha256sum "$out/config.json" | cut -d' ' -f1)
config_size=$(stat -c %s "$out/config.json")
cp "$out/layer.tar.gz" "$src/$layer_digest"
cp "$out/config.json" "$src/$config_digest"
printf '{"schemaVersion":2,"mediaType":"application/vnd.docker.distribution.manifest.v2+json","config":{"mediaType":"application/vnd.docker.container.image.v1+json","size":%d,"digest":"sha256:%s"},"layers":[{"mediaType":"application/vnd.docker.image.rootfs.diff.tar.gzip","size":%d,"digest":"sha256:%s"}]}' \
  "$config_size" "$config_digest" "$layer_size" "$layer_digest" >"$src/manifest.json"
echo "Directory Transport Version: 1.1" >"$src/version"
cp "$src/manifest.json" "$out/manifest-a.json"
# manifest-b differs only in an annotation, so its digest differs.
sed 's/^{"schemaVersion":2,/{"schemaVersion":2,"annotations":{"fixture":"b"},/' "$src/manifest.json" >"$out/manifest-b.json"

skopeo standalone-sign "$out/manifest-a.json" quay.io/example/app:1 "$trusted" -o "$out/a-trusted.sig"
skopeo standalone-sign "$out/manifest-a.json" quay.io/example/app:1 "$other" -o "$out/a-other.sig"
skopeo standalone-sign "$out/manifest-a.json" quay.io/example/app:1 "$subkey" -o "$out/a-subkey.sig"
skopeo standalone-sign "$out/manifest-b.json" quay.io/example/app:2 "$trusted" -o "$out/b-trusted.sig"

# Sign while copying, as `skopeo copy --sign-by` does for a registry push; dir: stores the
# signature next to the manifest as signature-1.
skopeo --insecure-policy copy --quiet --sign-by "$trusted" --sign-identity quay.io/example/app:copy \
  "dir:$src" "dir:$out/copy"
