#!/bin/sh
# Test launcher of the sanitizer presets (ZPAGE_TEST_LAUNCHER): runs "$@" with ASLR off.
#
# gcc 12's TSan and ASan expect x86-64's default mmap randomisation (vm.mmap_rnd_bits = 28). Kernels
# set to 32 (Ubuntu 23.10+, some clouds) make TSan die with "unexpected memory mapping" and ASan spin
# on "AddressSanitizer:DEADLYSIGNAL", intermittently. Measured on Linux 6.18 with the sysctl at 32: a
# small threaded program failed 29/30 runs under TSan and 9/30 under ASan, and 0/30 under setarch -R.
# The sysctl is machine-wide and readable only by root, so each test drops ASLR for itself instead.
# Where personality(2) is refused (some container seccomp profiles) the test runs unchanged.
if setarch "$(uname -m)" -R true 2>/dev/null; then
    exec setarch "$(uname -m)" -R "$@"
fi
exec "$@"
