#!/usr/bin/env bash
# make arm-check: prove the board path on aarch64 under qemu-user emulation.
#
# Makes (or reuses) an aarch64 Debian root in build/arm64-root with debootstrap,
# installs edgeshuffle there with only the `runtime` extra (aarch64 wheels from
# PyPI), runs `edgeshuffle info`, `bench` and `parity` on the artifacts of
# `make demo`, runs the same parity on this machine and compares the logits
# (tests/arm/compare_parity.py). Exits non-zero on any difference.
#
# Needs root, debootstrap, qemu-user-static and binfmt-support (Debian packages).
# /sys is never mounted into the root: the runtimes' CPU detection crashes
# under emulation when it can read /sys.
set -euo pipefail

ROOT=${ARM_ROOT:-build/arm64-root}
DEMO=${DEMO_DIR:-build/demo}
WORK=${ARM_WORK:-build/arm-check}
PER_CLASS=${ARM_PER_CLASS:-10}      # evaluation images per class (CIFAR-10 test set shipped in calibration/)
IMAGES_FROM=${ARM_IMAGES:-calibration/cifar10-test-2000}
SUITE=${ARM_SUITE:-bookworm}
PY=${PYTHON:-.venv/bin/python}
ARTIFACTS=(float32.tflite int8.tflite float32.onnx int8.onnx)
VENV=/opt/edgeshuffle-venv           # inside the root
START=$(date +%s)

die() { echo "arm-check: $*" >&2; exit 2; }
step() { echo "[arm-check $(($(date +%s) - START))s] $*" >&2; }

[ "$(id -u)" = 0 ] || die "needs root (debootstrap, chroot, mounts): run 'sudo make arm-check'"
for tool in debootstrap chroot update-binfmts; do
    command -v "$tool" >/dev/null || die "$tool not found: apt-get install debootstrap qemu-user-static binfmt-support"
done
for artifact in "${ARTIFACTS[@]}"; do
    [ -f "$DEMO/$artifact" ] || die "$DEMO/$artifact missing: run 'make demo' first"
done
[ -d "$IMAGES_FROM" ] || die "$IMAGES_FROM: no evaluation images"

# --- binfmt: the kernel runs aarch64 binaries through qemu-aarch64-static ---------------------
if [ ! -e /proc/sys/fs/binfmt_misc/register ]; then
    mount -t binfmt_misc binfmt_misc /proc/sys/fs/binfmt_misc || die "cannot mount binfmt_misc"
fi
if ! grep -q '^enabled' /proc/sys/fs/binfmt_misc/qemu-aarch64 2>/dev/null; then
    update-binfmts --enable qemu-aarch64 || die "cannot enable qemu-aarch64 in binfmt_misc (is qemu-user-static installed?)"
fi

mounted=()
cleanup() {
    local i
    for ((i = ${#mounted[@]} - 1; i >= 0; i--)); do umount -l "${mounted[i]}" 2>/dev/null || true; done
}
trap cleanup EXIT
bind() {  # bind <what> <mountpoint> [type]
    mkdir -p "$2"
    if [ "${3:-}" = proc ]; then mount -t proc proc "$2"; else mount --bind "$1" "$2"; fi
    mounted+=("$2")
}
is_mounted_under() { grep -q " $(realpath -m "$1")/" /proc/mounts; }

# --- the aarch64 root, cached ------------------------------------------------------------------
if [ ! -f "$ROOT/.arm-check-root" ]; then
    is_mounted_under "$ROOT" && die "something is still mounted under $ROOT; unmount it first"
    rm -rf "$ROOT" "$ROOT.partial"
    step "debootstrap --arch=arm64 $SUITE into $ROOT (first run only, several minutes)"
    mkdir -p "$(dirname "$ROOT")"
    debootstrap --arch=arm64 --variant=minbase --include=python3,python3-venv,python3-pip,ca-certificates \
        "$SUITE" "$ROOT.partial" > "$WORK.debootstrap.log" 2>&1 \
        || { tail -20 "$WORK.debootstrap.log" >&2; die "debootstrap failed (log: $WORK.debootstrap.log)"; }
    mv "$ROOT.partial" "$ROOT"
    touch "$ROOT/.arm-check-root"
else
    step "reusing the aarch64 root in $ROOT"
fi

# --- what goes in: a wheel of the working tree, the artifacts, a labelled image subset ----------
rm -rf "$WORK" && mkdir -p "$WORK/in/artifacts" "$WORK/in/images" "$WORK/out" "$WORK/x86"
step "building the edgeshuffle wheel from the working tree"
"$PY" -m pip wheel --quiet --no-deps --no-build-isolation -w "$WORK/in" . > "$WORK/wheel.log" 2>&1 \
    || { cat "$WORK/wheel.log" >&2; die "pip wheel failed"; }
WHEEL=$(basename "$(ls "$WORK"/in/edgeshuffle-*.whl)")
cp constraints.txt "$WORK/in/"
# pip inside the root trusts what this machine trusts (a TLS-inspecting proxy's CA, for one).
HOST_CA=${PIP_CERT:-${SSL_CERT_FILE:-/etc/ssl/certs/ca-certificates.crt}}
[ -f "$HOST_CA" ] && cp "$HOST_CA" "$WORK/in/host-ca.crt"
cp tests/arm/inside.sh "$WORK/in/"
for artifact in "${ARTIFACTS[@]}"; do cp "$DEMO/$artifact" "$WORK/in/artifacts/"; done
for class_dir in "$IMAGES_FROM"/*/; do
    class=$(basename "$class_dir")
    mkdir -p "$WORK/in/images/$class"
    find "$class_dir" -maxdepth 1 -type f | sort | sed -n "1,${PER_CLASS}p" | xargs -r cp -t "$WORK/in/images/$class"
done

# --- inside the root: venv, runtime extra only, info / bench / parity ---------------------------
rm -rf "$ROOT/check" && mkdir -p "$ROOT/check"
cp /etc/resolv.conf "$ROOT/etc/resolv.conf"
bind proc "$ROOT/proc" proc
# No bind of the host's /dev (a leftover bind mount would let `make clean` delete the host's devices):
# the few device nodes Python and pip need, made in the root itself.
for node in "null 1 3" "zero 1 5" "random 1 8" "urandom 1 9"; do
    set -- $node
    [ -c "$ROOT/dev/$1" ] || { rm -f "$ROOT/dev/$1"; mknod -m 666 "$ROOT/dev/$1" c "$2" "$3"; }
done
bind "$(realpath "$WORK/in")" "$ROOT/check/in"
bind "$(realpath "$WORK/out")" "$ROOT/check/out"
[ -e "$ROOT/sys/devices" ] && die "/sys is mounted in $ROOT: the runtimes' CPU detection crashes under emulation"
step "inside the aarch64 root: venv, pip install '$WHEEL[runtime]', info, bench, parity"
passed=()
for name in http_proxy https_proxy no_proxy HTTP_PROXY HTTPS_PROXY NO_PROXY PIP_INDEX_URL PIP_DEFAULT_TIMEOUT; do
    [ -n "${!name:-}" ] && passed+=("$name=${!name}")
done
[ -f "$WORK/in/host-ca.crt" ] && passed+=(PIP_CERT=/check/in/host-ca.crt)
chroot "$ROOT" /usr/bin/env -i HOME=/root LANG=C.UTF-8 PATH=/usr/local/bin:/usr/bin:/bin \
    VENV="$VENV" WHEEL="$WHEEL" "${passed[@]}" /bin/bash /check/in/inside.sh > "$WORK/aarch64.log" 2>&1 \
    || { tail -30 "$WORK/aarch64.log" >&2; die "the run inside the aarch64 root failed (log: $WORK/aarch64.log)"; }
cleanup
mounted=()

# --- the same parity on this machine, and the comparison ---------------------------------------
step "the same parity on $(uname -m)"
models=()
for artifact in "${ARTIFACTS[@]}"; do models+=("$WORK/in/artifacts/$artifact"); done
"$(dirname "$PY")/edgeshuffle" parity "${models[@]}" --images "$WORK/in/images" --json "$WORK/x86/parity.json" \
    --logits "$WORK/x86/logits.npz" > "$WORK/x86.log" 2>&1 || { cat "$WORK/x86.log" >&2; die "x86 parity failed"; }
# LiteRT's optimized int8 kernels are not bit-exact with each other; its reference kernels are the
# same on both architectures. x86's XNNPACK, built-in and reference runs set int8.tflite's tolerance
# (tests/arm/compare_parity.py).
for kernels in builtin reference; do
    "$(dirname "$PY")/edgeshuffle" parity "${models[@]}" --images "$WORK/in/images" --tflite-kernels "$kernels" \
        --logits "$WORK/x86/logits-$kernels.npz" >> "$WORK/x86.log" 2>&1 \
        || { cat "$WORK/x86.log" >&2; die "x86 parity ($kernels kernels) failed"; }
done

summary=$("$PY" tests/arm/compare_parity.py "$WORK/x86/logits.npz" "$WORK/out/logits.npz" "$WORK/in/artifacts" \
    --x86-builtin "$WORK/x86/logits-builtin.npz" --x86-reference "$WORK/x86/logits-reference.npz" \
    --arm-reference "$WORK/out/logits-reference.npz") && status=0 || status=$?

echo
echo "=== make arm-check: the board path on aarch64 (qemu-user emulation) ==="
grep -E '^(aarch64 python|tensorflow|installed)' "$WORK/out/facts.txt"
grep -E '^(machine:|WARNING:)' "$WORK/out/bench.txt" || echo "bench: no emulation warning printed (!)"
echo "$summary"
echo "logs: $WORK/aarch64.log (info, bench, parity on aarch64), $WORK/x86.log; took $(($(date +%s) - START))s"
if ! grep -q '^WARNING: emulated' "$WORK/out/bench.txt"; then
    echo "arm-check: bench did not flag emulation" >&2
    status=1
fi
exit "$status"
