#!/bin/sh
# Re-vendors Graphviz for the browser (the npm package @viz-js/viz) into
# this directory: `make vendor-viz` or `./vendor-viz.sh [VERSION]`. Needs
# npm and access to the npm registry; the result is committed, so builds
# and tests never need either. Update the version and checksum in
# README.md afterwards.
set -eu
version="${1:-3.31.0}"
dir=$(cd "$(dirname "$0")" && pwd)
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
cd "$tmp"
npm pack --silent "@viz-js/viz@$version" >/dev/null
tar xzf "viz-js-viz-$version.tgz"
cp package/dist/viz-global.js "$dir/viz-global.js"
echo "vendored @viz-js/viz $version (license: $(npm view --silent "@viz-js/viz@$version" license))"
sha256sum "$dir/viz-global.js"
