#!/usr/bin/env bash
# Usage: fetch-kernel.sh SUITE
# Resolves Debian's linux-image-amd64 meta package in SUITE ("bookworm": the
# candidate of the default suites, i.e. 6.1 with its security updates;
# "bookworm-backports": 6.12), downloads the kernel image package it depends on
# with apt-get download and unpacks it (not installed) into the cache. Prints
# the unpacked tree's path (the package's files under root/, with a
# modules.dep). Idempotent: a finished tree is reused.
set -euo pipefail

suite=${1:-bookworm}
cache=${XDG_CACHE_HOME:-$HOME/.cache}/nsint/vm
mkdir -p "$cache"

if [ "$suite" = bookworm ]; then
	# The candidate excludes backports (priority 100) and includes
	# bookworm-security/-updates, whose ABI stays in the archive.
	dep=$(apt-cache depends linux-image-amd64 | sed -n 's/^ *Depends: \(linux-image-[^ ]*\).*/\1/p' | head -n1)
	spec=$dep
else
	dep=$(apt-cache show "linux-image-amd64/$suite" | sed -n 's/^Depends: \(linux-image-[^ ,]*\).*/\1/p' | head -n1)
	spec=$dep/$suite
fi
[ -n "$dep" ] || { echo "hack/vm: cannot resolve linux-image-amd64 in $suite (apt-get update?)" >&2; exit 1; }

tree=$cache/$dep
if [ ! -e "$tree/.complete" ]; then
	rm -rf "$tree" "$tree.tmp"
	mkdir -p "$tree.tmp"
	(cd "$tree.tmp" && apt-get download -qq -o APT::Sandbox::User=root "$spec" >&2)
	deb=$(ls "$tree.tmp"/*.deb)
	dpkg-deb -x "$deb" "$tree.tmp/root"
	rm -f "$deb"
	mv "$tree.tmp" "$tree"
	touch "$tree/.complete"
fi
# The package has no modules.dep (depmod runs at install): make one, with
# busybox's depmod since kmod is not needed on this machine otherwise.
release=$(ls "$tree/root/lib/modules")
if [ ! -s "$tree/root/lib/modules/$release/modules.dep" ]; then
	busybox depmod -b "$tree/root" "$release"
fi
echo "$tree"
