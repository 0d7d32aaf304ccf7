#!/usr/bin/env bash
# make test-kernels: runs the privileged test binaries (pkg/datapath, pkg/tc,
# e2e) as root inside Debian kernels booted under QEMU's software emulation,
# and prints one line per boot:
#   kernel <release>: attach=<tcx|tc> <N> passed, <M> failed, <K> skipped
#
# KERNELS    boots, each SUITE:ATTACH — the suite whose linux-image-amd64 is
#            booted and the attach mode auto must resolve to there.
#            Default "bullseye:tc bookworm:tc" (Debian 11's 5.10: no TCX,
#            no drop reasons; Debian 12's 6.1: no TCX): the short form CI
#            runs. The full form, KERNELS="bullseye:tc bookworm:tc
#            bookworm-backports:tcx", adds Debian's 6.12 (TCX).
#            fetch-kernel.sh says where each suite's kernel comes from.
# What each boot runs: hack/vm/tests.
# VM_TIMEOUT seconds one boot may take, tests included (default 1500).
# Kernels are cached in ${XDG_CACHE_HOME:-$HOME/.cache}/nsint/vm/; the logs of
# the last run of each kernel are in that directory's out/<package>/.
#
# Other VM suites (test-sriov.sh) run through this script with:
# VM_TESTS           the tests file (default hack/vm/tests)
# VM_PACKAGES        the packages whose test binaries go into the VM
# VM_OUT             the logs' directory under the cache (default out)
# VM_KERNEL_ARGS     more NAME=value words for the guest's environment
# VM_SUMMARIZE_FLAGS more flags for hack/vm/summarize (-list-vfs, ...)
# and VM_QEMU_ARGS, VM_MEMORY (boot.sh), VM_EXTRA_MODULES (build-initramfs.sh).
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
cache=${XDG_CACHE_HOME:-$HOME/.cache}/nsint/vm
kernels=${KERNELS:-bullseye:tc bookworm:tc}
bound=${VM_TIMEOUT:-1500}
tests=${VM_TESTS:-$here/tests}
packages=${VM_PACKAGES:-pkg/datapath pkg/tc e2e}
outdir=${VM_OUT:-out}
# shellcheck disable=SC2206 # words
kernel_args=(${VM_KERNEL_ARGS:-})
# shellcheck disable=SC2206 # words
summarize_flags=(${VM_SUMMARIZE_FLAGS:-})

[ "$(id -u)" -eq 0 ] || { echo "hack/vm: run as root (installs packages; the guest runs as root anyway)" >&2; exit 1; }
"$here/install-deps.sh"

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/bin"

t0=$(date +%s)
(
	cd "$repo"
	export CGO_ENABLED=0
	for p in $packages; do
		go test -c -vet=off -trimpath -ldflags '-s -w' -o "$work/bin/$(basename "$p").test" "./$p"
	done
	go build -trimpath -ldflags '-s -w' -o "$work/bin/" ./cmd/nsint-agent ./cmd/nsint-collector
	go build -o "$work/summarize" ./hack/vm/summarize
)
echo "hack/vm: test binaries built in $(($(date +%s) - t0))s" >&2


failed=0
summaries=()
for k in $kernels; do
	suite=${k%%:*} attach=${k#*:}
	case $attach in tc | tcx) ;; *) echo "hack/vm: KERNELS entry $k: want SUITE:tc or SUITE:tcx" >&2; exit 1 ;; esac
	ktree=$("$here/fetch-kernel.sh" "$suite")/root
	pkgname=$(basename "$(dirname "$ktree")")
	out=$cache/$outdir/$pkgname
	"$here/build-initramfs.sh" "$ktree" "$work/bin" "$tests" "$work/initramfs-$pkgname"
	args=("${kernel_args[@]}")
	[ "$attach" = tc ] && args+=(NSINT_NO_TCX=1)
	t1=$(date +%s)
	vmrc=0
	"$here/boot.sh" "$ktree" "$work/initramfs-$pkgname" "$out" "$bound" "${args[@]}" || vmrc=$?
	echo "hack/vm: $pkgname booted and tested in $(($(date +%s) - t1))s (logs: $out)" >&2
	src=0
	"$work/summarize" -expect-attach "$attach" "${summarize_flags[@]}" "$out/results.log" | tee "$out/summary.txt" || src=$?
	summaries+=("$(head -n1 "$out/summary.txt")")
	if [ "$vmrc" -ne 0 ] || [ "$src" -ne 0 ]; then
		failed=1
	fi
done
if [ "${#summaries[@]}" -gt 1 ]; then
	printf '%s\n' "${summaries[@]}"
fi
echo "hack/vm: total $(($(date +%s) - t0))s" >&2
exit "$failed"
