#!/usr/bin/env bash
# make test-sriov: boots a Debian kernel under QEMU's software emulation with
# an emulated Intel 82576 (QEMU's igb: SR-IOV capable) on a QEMU-internal hub
# only — the VM reaches no network — and runs the SR-IOV tests there
# (hack/vm/tests-sriov; e2e/sriov_test.go): VFs made through sriov_numvfs,
# handed to pods as the SR-IOV CNI does, the real nsint-agent watching them.
# Prints one line per boot, then each VF the test found:
#   kernel <release>: attach=<tcx|tc> <N> passed, <M> failed, <K> skipped
#     VF <pod netns>/net1 driver=igbvf pci=<VF address> pf=<PF address>
#
# KERNELS    boots, each SUITE:ATTACH (as in test-kernels.sh). Default
#            "bookworm:tc" (Debian 12's 6.1, legacy tc): the short form CI
#            runs. The full form, KERNELS="bookworm:tc bookworm-backports:tcx",
#            adds Debian's 6.12 (TCX).
# VM_TIMEOUT seconds one boot may take, test included (default 600).
# Logs of the last run of each kernel: ${XDG_CACHE_HOME:-$HOME/.cache}/nsint/vm/out-sriov/<package>/.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)

# One igb (82576, SR-IOV) behind a PCIe root port, its only backend a port of
# QEMU's internal hub 0: no user, tap or socket networking, so no path out.
qemu_args="-device pcie-root-port,id=nsintrp0,chassis=1,slot=1 -netdev hubport,id=nsinthp0,hubid=0"
qemu_args+=" -device igb,bus=nsintrp0,netdev=nsinthp0"

# The kernel-matrix harness with this suite's tests, device and checks
# (-require-vfs: a boot that found no VF fails).
KERNELS=${KERNELS:-bookworm:tc} VM_TIMEOUT=${VM_TIMEOUT:-600} VM_MEMORY=${VM_MEMORY:-1536} \
	VM_TESTS=$here/tests-sriov VM_PACKAGES="ifacewatch e2e" VM_OUT=out-sriov \
	VM_KERNEL_ARGS=NSINT_SRIOV=1 VM_SUMMARIZE_FLAGS="-list-vfs -require-vfs" \
	VM_QEMU_ARGS=$qemu_args VM_EXTRA_MODULES="igb igbvf" \
	exec "$here/test-kernels.sh"
