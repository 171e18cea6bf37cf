#!/bin/sh
# Regenerates testdata/compat/<release>/ with a real Caddy built from the release's tag:
# configs, cookies (manifest.json), the key rings it stored, and rolling-upgrade.txt (the
# release and this checkout's build on one storage). Run from anywhere in the repository:
#
#	testdata/compat/make.sh [v0.1.0]
#
# It needs git, Go and about four minutes; it writes only under testdata/compat/<release>/.
set -eu

release=${1:-v0.1.0}
root=$(git rev-parse --show-toplevel)
commit=$(git -C "$root" rev-parse "$release^{commit}")
tmp=$(mktemp -d)
cleanup() {
	git -C "$root" worktree remove --force "$tmp/src" 2>/dev/null || true
	rm -rf "$tmp"
}
trap cleanup EXIT INT TERM

git -C "$root" worktree add --detach "$tmp/src" "$commit" >/dev/null
(cd "$tmp/src" && go build -o "$tmp/caddy-old" ./cmd/caddy)
(cd "$root" && go build -o "$tmp/caddy-new" ./cmd/caddy)

out="$root/testdata/compat/$release"
mkdir -p "$out"
cd "$root"
go run ./testdata/compat/make -caddy "$tmp/caddy-old" -out "$out" -release "$release" -commit "$commit"
go run ./testdata/compat/make -caddy "$tmp/caddy-old" -rolling "$tmp/caddy-new" -out "$out"
