#!/usr/bin/env bash
# Usage: boot.sh KERNEL_TREE INITRAMFS OUT_DIR TIMEOUT_SECONDS [KERNEL_ARGS...]
# Boots the kernel under QEMU's software emulation (TCG; KVM is not usable on
# our machines) with no network device at all: the guest console goes to
# OUT_DIR/console.log, the tests' results (the guest's second serial port) to
# OUT_DIR/results.log. Fails when QEMU does not exit within TIMEOUT_SECONDS.
# VM_QEMU_ARGS: extra QEMU arguments, split on spaces (test-sriov.sh: igb
# devices on a QEMU-internal hub, never a host network backend).
set -euo pipefail

ktree=$1 initrd=$2 out=$3 bound=$4
shift 4
vmlinuz=$(ls "$ktree"/boot/vmlinuz-*)
mkdir -p "$out"
rm -f "$out/console.log" "$out/results.log"
rc=0
# shellcheck disable=SC2086 # VM_QEMU_ARGS is words
timeout --kill-after=10 "$bound" qemu-system-x86_64 \
	-accel tcg -M q35 -cpu max -smp "${VM_CPUS:-2}" -m "${VM_MEMORY:-3072}" \
	-display none -monitor none -nodefaults -no-reboot \
	-serial "file:$out/console.log" -serial "file:$out/results.log" \
	-kernel "$vmlinuz" -initrd "$initrd" \
	${VM_QEMU_ARGS:-} \
	-append "console=ttyS0 panic=-1 oops=panic $*" || rc=$?
if [ "$rc" -eq 124 ] || [ "$rc" -eq 137 ]; then
	echo "hack/vm: VM did not finish within ${bound}s (console: $out/console.log)" >&2
	exit 124
fi
exit "$rc"
