#!/usr/bin/env bash
# Usage: build-initramfs.sh KERNEL_TREE BIN_DIR TESTS_FILE OUT
# Builds an uncompressed newc initramfs for the kernel unpacked at KERNEL_TREE
# (fetch-kernel.sh): busybox-static, Debian's ip/tc/nsenter/ping/sysctl/iptables
# with their shared libraries (busybox's ip lacks netns, veth peer netns,
# macvlan and bridge), the kernel modules the tests need with their
# dependencies from modules.dep, the static binaries of BIN_DIR, the list of
# test binaries to run (TESTS_FILE) and hack/vm/init as /init.
set -euo pipefail

ktree=$1 bindir=$2 tests=$3 out=$4
here=$(cd "$(dirname "$0")" && pwd)
release=$(ls "$ktree/lib/modules")
moddir=$ktree/lib/modules/$release

# What the tests load: veth, macvlan and bridge for the fake node, clsact and
# cls_bpf for legacy attachment, nf_tables + xt_tcpudp for iptables-nft drops
# (crc32c_generic: libcrc32c's soft dependency, absent from modules.dep), and
# xfrm_user + nfnetlink: a vishvananda/netlink handle opened in a namespace
# opens NETLINK_XFRM and NETLINK_NETFILTER sockets too, and fails with
# "protocol not supported" when their modules are not loaded. cls_u32,
# cls_matchall, act_gact and act_mirred: the foreign classifying filters nsint must run
# ahead of (u32 … classid, matchall action ok).
modules=(veth macvlan bridge sch_ingress cls_bpf crc32c_generic nf_tables nft_compat xt_tcpudp
	xfrm_user nfnetlink cls_u32 cls_matchall act_gact act_mirred)
# Modules that only some kernels build separately: nft_counter (every
# iptables-nft rule has a counter; without the module the rule insert fails
# with ENOENT) is its own module on 5.10 and part of nf_tables.ko on 6.1;
# loaded where the kernel has it as a module.
optional_modules=(nft_counter)
# VM_EXTRA_MODULES: more modules, space-separated (test-sriov.sh: igb igbvf).
# shellcheck disable=SC2206 # words
modules+=(${VM_EXTRA_MODULES:-})
# Dynamically linked tools copied from this machine (Debian 12).
tools=(ip tc nsenter ping sysctl xtables-nft-multi ethtool)

root=$(mktemp -d)
trap 'rm -rf "$root"' EXIT
mkdir -p "$root"/{bin,usr/bin,etc/nsint,proc,sys,dev,tmp,run,var/run/netns,nsint/bin,nsint/tests,lib64}

cp /bin/busybox "$root/bin/busybox"
copy_libs() { # copies the shared libraries of $1, at the paths ldd gives
	ldd "$1" 2>/dev/null | grep -oE '/[^ ]+\.so[^ ]*' | while read -r lib; do
		[ -e "$root$lib" ] && continue
		mkdir -p "$root$(dirname "$lib")"
		cp -L "$lib" "$root$lib"
	done
}
for t in "${tools[@]}"; do
	src=$(command -v "$t" || true)
	[ -n "$src" ] || { echo "hack/vm: $t not found (install iproute2, util-linux, iputils-ping, procps, iptables)" >&2; exit 1; }
	cp -L "$src" "$root/usr/bin/$t"
	copy_libs "$src"
done
ln -s xtables-nft-multi "$root/usr/bin/iptables"
ln -s xtables-nft-multi "$root/usr/bin/ip6tables"
xt=/usr/lib/x86_64-linux-gnu/xtables
if [ -d "$xt" ]; then # iptables loads its matches and targets with dlopen
	mkdir -p "$root$xt"
	cp "$xt"/*.so "$root$xt/"
	for so in "$xt"/*.so; do copy_libs "$so"; done
fi
cp /etc/protocols /etc/services "$root/etc/" 2>/dev/null || true
echo 'root:x:0:0:root:/root:/bin/sh' >"$root/etc/passwd"
echo 'root:x:0:' >"$root/etc/group"

# Modules in load order: every module after its dependencies (resolved
# recursively through modules.dep), decompressed (.ko.xz, .ko.zst) since
# busybox insmod takes plain objects.
: >"$root/etc/nsint/modules"
declare -A seen=()
add_module() { # $1: path relative to the modules directory
	local f=$1 line deps d plain
	[ -n "${seen[$f]:-}" ] && return 0
	seen[$f]=1
	line=$(awk -F: -v f="$f" '$1 == f { print; exit }' "$moddir/modules.dep")
	read -r -a deps <<<"${line#*:}"
	for d in "${deps[@]}"; do add_module "$d"; done
	plain=${f%.xz}
	plain=${plain%.zst}
	mkdir -p "$root/lib/modules/$release/$(dirname "$f")"
	case $f in
	*.xz) xz -dc "$moddir/$f" >"$root/lib/modules/$release/$plain" ;;
	*.zst) zstd -qdc "$moddir/$f" >"$root/lib/modules/$release/$plain" ;;
	*) cp "$moddir/$f" "$root/lib/modules/$release/$plain" ;;
	esac
	echo "$plain" >>"$root/etc/nsint/modules"
}
for m in "${modules[@]}"; do
	if grep -qE "/$m\.ko(\.[a-z]+)?\$" "$moddir/modules.builtin"; then
		continue
	fi
	f=$(grep -oE "^[^:]*/$m\.ko(\.[a-z]+)?:" "$moddir/modules.dep" | head -n1) ||
		{ echo "hack/vm: module $m not in $release" >&2; exit 1; }
	add_module "${f%:}"
done
for m in "${optional_modules[@]}"; do
	f=$(grep -oE "^[^:]*/$m\.ko(\.[a-z]+)?:" "$moddir/modules.dep" | head -n1) || continue
	add_module "${f%:}"
done

cp "$bindir"/nsint-agent "$bindir"/nsint-collector "$root/nsint/bin/"
cp "$bindir"/*.test "$root/nsint/tests/"
cp "$tests" "$root/etc/nsint/tests"
install -m 0755 "$here/init" "$root/init"

(cd "$root" && find . | LC_ALL=C sort | busybox cpio -o -H newc -R 0:0 2>/dev/null) >"$out.tmp"
mv "$out.tmp" "$out"
