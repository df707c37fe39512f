#!/usr/bin/env bash
# test.sh: pullgate's single test command (the README's, and CI's through .ci/run).
#
#   1. installs the third-party programs the tests use (hack/install-test-tools.sh);
#   2. go vet ./... (and the oracle module), go mod tidy -diff
#   3. gofmt: fails if any Go file is not formatted; no tracked file is a compiled program
#      or larger than 1 MiB (a go build output committed by accident);
#   4. go test -count=1 ./... (unit, integration and CLI tests);
#   5. runs every fuzz target briefly (FUZZTIME, default 5s each; their seeds also run in step 4);
# then prints a summary. Exits non-zero if any step failed.
#
# Environment: FUZZTIME (default 5s; 0 skips fuzzing), TEST_TIMEOUT (default 20m),
# GOFLAGS as usual.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

export PATH="/usr/local/go/bin:$PATH"
export GOTOOLCHAIN=local   # never download another toolchain behind the user's back
command -v go >/dev/null || { echo "test.sh: go is not installed (see README)" >&2; exit 1; }
export PATH="$(go env GOPATH)/bin:$PATH"

FUZZTIME="${FUZZTIME:-5s}"
TEST_TIMEOUT="${TEST_TIMEOUT:-20m}"

summary=()
failed=0

log() { printf '\n==> %s\n' "$*" >&2; }

# step NAME CMD...: runs CMD, records its outcome and duration for the summary.
step() {
  local name=$1; shift
  log "$name"
  local t0=$SECONDS rc=0
  "$@" || rc=$?
  if [ "$rc" -eq 0 ]; then
    summary+=("ok    $name ($((SECONDS - t0)) s)")
  else
    summary+=("FAIL  $name ($((SECONDS - t0)) s, exit $rc)")
    failed=1
  fi
}

check_gofmt() {
  local files
  files=$(gofmt -l .)
  if [ -n "$files" ]; then
    echo "these files need gofmt -w:" >&2
    echo "$files" >&2
    return 1
  fi
}

# check_tracked_files fails on any file git tracks that is an ELF program or over 1 MiB:
# twice a go build output (38 MB each) was committed by accident and went unnoticed.
check_tracked_files() {
  local bad=0 f
  while IFS= read -r -d '' f; do
    [ -f "$f" ] && [ ! -L "$f" ] || continue
    if [ "$(head -c 4 "$f" | od -An -tx1 | tr -d ' ')" = "7f454c46" ]; then
      echo "tracked file is a compiled program: $f (git rm --cached it)" >&2; bad=1
    elif [ "$(stat -c %s "$f")" -gt 1048576 ]; then
      echo "tracked file is over 1 MiB: $f" >&2; bad=1
    fi
  done < <(git ls-files -z 2>/dev/null)
  return "$bad"
}

# fuzz_targets prints "package target" for every func FuzzX in the module.
fuzz_targets() {
  local pkg
  for pkg in $(go list ./...); do
    go test -list '^Fuzz' "$pkg" | grep '^Fuzz' | sed "s|^|$pkg |" || true
  done
}

# fuzz_one PKG TARGET: runs one fuzz target for FUZZTIME. Go 1.26's fuzz coordinator can
# report a bare "context deadline exceeded" when -fuzztime ends while a worker is busy
# (go.dev/issue/75804, fixed in Go 1.27): no input failed and none is written to
# testdata/fuzz. Only that exact outcome is run once more; any failing input, or the same
# outcome twice, fails the step.
fuzz_one() {
  local pkg=$1 target=$2 dir out rc attempt
  dir="$(go list -f '{{.Dir}}' "$pkg")/testdata/fuzz/$target"
  for attempt in 1 2; do
    local before
    before=$(ls "$dir" 2>/dev/null | sort | tr '\n' ' ')
    rc=0
    out=$(go test -run '^$' -fuzz "^${target}\$" -fuzztime "$FUZZTIME" "$pkg" 2>&1) || rc=$?
    printf '%s\n' "$out" >&2
    [ "$rc" -eq 0 ] && return 0
    if [ "$attempt" -eq 1 ] && [ "$(ls "$dir" 2>/dev/null | sort | tr '\n' ' ')" = "$before" ] &&
       printf '%s\n' "$out" | grep -qx '    context deadline exceeded' &&
       ! printf '%s\n' "$out" | grep -q 'Failing input written'; then
      echo "test.sh: $target stopped with the fuzz coordinator's deadline race (go.dev/issue/75804), no failing input; running it once more" >&2
      continue
    fi
    return "$rc"
  done
}

log "install test tools (hack/install-test-tools.sh)"
if ! ./hack/install-test-tools.sh; then
  echo "test.sh: hack/install-test-tools.sh failed; the tests need those tools, stopping" >&2
  exit 1
fi
summary+=("ok    install test tools")

step "go vet ./..." go vet ./...
# The containers/image oracle is a module of its own, outside ./... of the main module.
step "go vet (integration/oracle)" bash -c 'cd integration/oracle && GOFLAGS=-mod=mod go vet -tags containers_image_openpgp ./...'
step "go mod tidy -diff" go mod tidy -diff
step "gofmt -l ." check_gofmt
step "no build outputs tracked" check_tracked_files
step "go test -count=1 -timeout $TEST_TIMEOUT ./..." go test -count=1 -timeout "$TEST_TIMEOUT" ./...

if [ "$FUZZTIME" != "0" ]; then
  log "discover fuzz targets"
  targets=$(fuzz_targets) || { summary+=("FAIL  discover fuzz targets"); failed=1; targets=""; }
  while read -r pkg target; do
    [ -n "$target" ] || continue
    step "fuzz $target ($pkg, $FUZZTIME)" fuzz_one "$pkg" "$target"
  done <<< "$targets"
fi

printf '\n==> summary\n' >&2
printf '  %s\n' "${summary[@]}" >&2
if [ "$failed" -ne 0 ]; then
  echo "test.sh: FAILED" >&2
  exit 1
fi
echo "test.sh: all passed" >&2
