#!/usr/bin/env bash
# Builds nsint-otelcol, the OpenTelemetry Collector the collector's OTLP export
# tests send to (the OTLP receiver, the file and debug exporters: main.go
# beside this script), from the Go module proxy, pinned by the scratch module
# beside this script (its go.mod is the only place the versions live), and
# caches it outside the repository. Prints the path of the binary.
#
# Idempotent: the binary is rebuilt only when what it is built from changes
# (go.mod, go.sum, main.go and the build flags), so a warm call does nothing
# (well under a second). Cold, on 2 idle cores: several minutes. The tests find
# the default cache directory by themselves; set NSINT_OTELCOL_BINS to use
# another one.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
export PATH=/usr/local/go/bin:$PATH
export CGO_ENABLED=0 GOFLAGS=-mod=readonly GOWORK=off

[ $# -eq 0 ] || { echo "usage: $0" >&2; exit 2; }

version=$(sed -n 's#^[[:space:]]*\(require[[:space:]]\+\)\?go.opentelemetry.io/collector/otelcol \(v[^[:space:]]*\).*#\2#p' "$here/go.mod" | head -n1)
[ -n "$version" ] || { echo "cannot read the pinned go.opentelemetry.io/collector/otelcol version from $here/go.mod" >&2; exit 1; }

out="${NSINT_OTELCOL_BINS:-${XDG_CACHE_HOME:-$HOME/.cache}/nsint/otelcol/$version}"
mkdir -p "$out"
ldflags="-s -w"
stamp="$({ cat "$here"/go.mod "$here"/go.sum "$here"/main.go; printf '%s\n' "$ldflags"; } | sha256sum | cut -d' ' -f1)"
if [ -x "$out/nsint-otelcol" ] && [ "$(cat "$out/.stamp" 2>/dev/null)" = "$stamp" ]; then
	echo "$out/nsint-otelcol"
	exit 0
fi
tmp="$(mktemp -d "$out/.build.XXXXXX")"
trap 'rm -rf "$tmp"' EXIT
echo "building nsint-otelcol as hack/otelcol/go.mod pins it ($version) into $out (cold: minutes)" >&2
(cd "$here" && go build -trimpath -ldflags "$ldflags" -o "$tmp/nsint-otelcol" .)
mv -f "$tmp/nsint-otelcol" "$out/"
echo "$stamp" >"$out/.stamp"
echo "$out/nsint-otelcol"
