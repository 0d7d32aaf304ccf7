#!/usr/bin/env bash
# Usage: fetch-kernel.sh SUITE
# Resolves Debian's linux-image-amd64 meta package in SUITE, downloads the
# kernel image package it depends on with apt-get download and unpacks it (not
# installed) into the cache. Prints the unpacked tree's path (the package's
# files under root/, with a modules.dep). Idempotent: a finished tree is reused.
#
# SUITE "bookworm": the candidate of this machine's own sources (6.1 with its
# security updates); "bookworm-backports" (6.12): the machine's sources too
# (install-deps.sh adds it). Any other suite, e.g. "bullseye" (5.10), is read
# through an apt configuration of the project's own under the cache — its
# sources file lists SUITE, SUITE-updates and, when reachable, SUITE-security —
# so nothing on the host changes: no sources entry, no package installed.
set -euo pipefail

suite=${1:-bookworm}
cache=${XDG_CACHE_HOME:-$HOME/.cache}/nsint/vm
mkdir -p "$cache"

apt_opts=(-o APT::Sandbox::User=root)
case $suite in
bookworm | bookworm-backports) ;;
*)
	# The private configuration: our own sources file, lists and package
	# cache; no sources.list.d, no DEP-11 metadata (the host's appstream
	# configuration would fetch it for every suite).
	adir=$cache/apt/$suite
	keyring=/usr/share/keyrings/debian-archive-keyring.gpg
	mkdir -p "$adir/lists/partial" "$adir/cache/archives/partial"
	apt_opts+=(-o "Dir::Etc::SourceList=$adir/sources.list" -o Dir::Etc::SourceParts=-
		-o "Dir::State::Lists=$adir/lists" -o "Dir::Cache=$adir/cache"
		-o Acquire::IndexTargets::deb::DEP-11::DefaultEnabled=false
		-o Acquire::IndexTargets::deb::DEP-11-icons::DefaultEnabled=false
		-o Acquire::IndexTargets::deb::DEP-11-icons-small::DefaultEnabled=false
		-o Acquire::Languages=none)
	write_sources() { # $1: 1 to include the security suite
		{
			echo "deb [signed-by=$keyring] http://deb.debian.org/debian $suite main"
			echo "deb [signed-by=$keyring] http://deb.debian.org/debian $suite-updates main"
			if [ "$1" = 1 ]; then
				echo "deb [signed-by=$keyring] http://security.debian.org/debian-security $suite-security main"
			fi
		} >"$adir/sources.list"
	}
	# Refresh the lists once a day. security.debian.org may be unreachable
	# from a build machine: then the suite and its -updates alone.
	if [ -z "$(find "$adir/lists" -maxdepth 1 -name '*_Packages*' -mmin -1440 2>/dev/null)" ]; then
		write_sources 1
		if ! apt-get "${apt_opts[@]}" -o APT::Update::Error-Mode=any -o Acquire::Retries=0 \
			-o Acquire::http::Timeout=20 update -qq >&2; then
			echo "hack/vm: $suite-security unreachable; using $suite and $suite-updates only" >&2
			write_sources 0
			apt-get "${apt_opts[@]}" update -qq >&2 ||
				[ -n "$(find "$adir/lists" -maxdepth 1 -name '*_Packages*')" ] ||
				{ echo "hack/vm: cannot read the $suite suite from deb.debian.org" >&2; exit 1; }
		fi
	fi
	;;
esac

if [ "$suite" = bookworm-backports ]; then
	dep=$(apt-cache show "linux-image-amd64/$suite" | sed -n 's/^Depends: \(linux-image-[^ ,]*\).*/\1/p' | head -n1)
	spec=$dep/$suite
else
	# The candidate: for bookworm it excludes backports (priority 100) and
	# includes bookworm-security/-updates, whose ABI stays in the archive;
	# in a private configuration it is the newest of the suite's sources.
	dep=$(apt-cache "${apt_opts[@]}" depends linux-image-amd64 |
		sed -n 's/^ *Depends: \(linux-image-[^ ]*\).*/\1/p' | head -n1)
	spec=$dep
fi
[ -n "$dep" ] || { echo "hack/vm: cannot resolve linux-image-amd64 in $suite (apt-get update?)" >&2; exit 1; }

tree=$cache/$dep
if [ ! -e "$tree/.complete" ]; then
	rm -rf "$tree" "$tree.tmp"
	mkdir -p "$tree.tmp"
	(cd "$tree.tmp" && apt-get "${apt_opts[@]}" download -qq "$spec" >&2)
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
