#!/usr/bin/env bash
# install-test-tools.sh: installs, idempotently, every third-party program pullgate's tests use.
# Debian packages: skopeo (GPG simple signing, sigstore compiled out in Debian), gnupg, and the
# real clients of the client-setup tests (integration/clients_*_test.go): containerd (its daemon
# and ctr, which the tests start themselves in a temporary folder), podman (run without a
# daemon, vfs storage) and docker.io (dockerd 20.10 and docker, the daemon started by the
# tests with its state in a temporary folder). No package starts a daemon here: the tests
# need no systemd.
# Go tools at pinned versions: crane, cosign, the OCI conformance suite, versitygw (the S3 server
# of the content store's s3 tests, internal/testsupport/versitygw), and the containers/image
# oracle (integration/oracle). Registries in tests are distribution's, in-process.
# policypull: the containers/image oracle of the sigstore tests, built from integration/oracle (a
# Go module of its own, pinned by its go.mod and go.sum).
# Fails loudly (non-zero exit) when something cannot be installed; the tests never skip silently.
set -euo pipefail

export PATH="/usr/local/go/bin:$PATH"
export GOTOOLCHAIN=local            # newer @latest modules want go1.27: pin, never auto-upgrade
GOBIN="${GOBIN:-$(go env GOPATH)/bin}"
export GOBIN PATH="$GOBIN:$PATH"

V_GGCR=v0.22.1
V_COSIGN=v2.6.5
V_CONFORMANCE=v0.0.0-20260831232431-97274622c111   # the module has no tags
V_VERSITYGW=v1.8.0

log() { printf '[install-test-tools] %s\n' "$*" >&2; }

# go_tool BIN MODULE PKG VERSION: go install PKG@VERSION unless $GOBIN/BIN was built from MODULE@VERSION.
go_tool() {
  local bin=$1 mod=$2 pkg=$3 ver=$4
  if [ -x "$GOBIN/$bin" ] && go version -m "$GOBIN/$bin" 2>/dev/null | awk '$1=="mod"{print $2" "$3}' | grep -qx "$mod $ver"; then
    return 0
  fi
  log "go install $pkg@$ver"
  local t0=$SECONDS
  GOFLAGS=-mod=mod go install "$pkg@$ver"
  log "$bin $ver installed in $((SECONDS - t0)) s"
}

# oracle_tool: builds integration/oracle into $GOBIN/policypull unless the binary there was built
# from the current sources. policypull --source-hash prints the SHA-256 of go.mod, go.sum and
# main.go (concatenated) it was built from; the integration tests compare the same hash and build
# their own copy when it differs.
oracle_tool() {
  local dir hash t0
  dir="$(cd "$(dirname "${BASH_SOURCE[0]}")/../integration/oracle" && pwd)"
  hash=$(cat "$dir/go.mod" "$dir/go.sum" "$dir/main.go" | sha256sum | cut -d' ' -f1)
  if [ -x "$GOBIN/policypull" ] && [ "$("$GOBIN/policypull" --source-hash 2>/dev/null)" = "$hash" ]; then
    return 0
  fi
  log "go build integration/oracle -> $GOBIN/policypull"
  t0=$SECONDS
  mkdir -p "$GOBIN"
  # Pure Go: the OpenPGP backend instead of cgo gpgme, and no containers/storage.
  (cd "$dir" && GOFLAGS="-mod=mod -buildvcs=false" GOWORK=off CGO_ENABLED=0 \
    go build -tags containers_image_openpgp -trimpath -ldflags "-X main.sourceHash=$hash" -o "$GOBIN/policypull" .)
  log "policypull built in $((SECONDS - t0)) s"
}

apt_pkgs() {
  local missing=() p
  for p in "$@"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  local sudo=()
  if [ "$(id -u)" -ne 0 ]; then
    command -v sudo >/dev/null || { log "need root or sudo to install: ${missing[*]}"; exit 1; }
    sudo=(sudo)
  fi
  log "apt-get install ${missing[*]}"
  "${sudo[@]}" apt-get update -q >/dev/null
  DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y -q --no-install-recommends "${missing[@]}" >/dev/null
}

command -v go >/dev/null || { log "go is not installed"; exit 1; }
command -v dpkg-query >/dev/null || { log "this script needs a Debian-like system (dpkg/apt)"; exit 1; }

apt_pkgs skopeo gnupg ca-certificates containerd podman docker.io
go_tool crane       github.com/google/go-containerregistry  github.com/google/go-containerregistry/cmd/crane   "$V_GGCR"
go_tool conformance github.com/opencontainers/distribution-spec/conformance github.com/opencontainers/distribution-spec/conformance "$V_CONFORMANCE"
go_tool cosign      github.com/sigstore/cosign/v2           github.com/sigstore/cosign/v2/cmd/cosign          "$V_COSIGN"
go_tool versitygw   github.com/versity/versitygw            github.com/versity/versitygw/cmd/versitygw        "$V_VERSITYGW"
oracle_tool

for b in skopeo gpg containerd ctr podman dockerd docker crane conformance cosign versitygw policypull; do
  command -v "$b" >/dev/null || { log "missing after install: $b"; exit 1; }
done
log "tools ready in $GOBIN"
