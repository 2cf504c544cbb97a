"""What machine a benchmark ran on: CPU, cores, the ISA features that matter, OS and runtimes.

Read from ``/proc/cpuinfo`` (Linux), ``platform`` and the installed
packages' versions; never imports TensorFlow. The ISA features listed are the
ones int8 and float inference kernels dispatch on:

- ARM: NEON (``asimd`` on AArch64, ``neon`` on 32-bit), the dot-product
  extension (``asimddp``: SDOT/UDOT, what XNNPACK's fast int8 kernels use),
  the int8 matrix-multiply extension (``i8mm``), half-precision arithmetic
  (``asimdhp``), ``sve``, ``bf16``.
- x86: AVX2, FMA, AVX-512 (``avx512f``, ``avx512bw``), VNNI (``avx512_vnni``,
  ``avx_vnni``), ``avx512_bf16``, AMX.

Emulation: under qemu-user the Python interpreter is an ARM binary but
``/proc/cpuinfo`` may still describe the x86 host, and timings mean nothing.
:func:`detect_emulation` names the evidence it found; it cannot see every
kind of emulation (a full-system VM looks like real hardware).
"""

from __future__ import annotations

import dataclasses
import importlib.metadata
import logging
import os
import platform
from pathlib import Path

log = logging.getLogger(__name__)

ARM_FEATURES = ("neon", "asimd", "asimddp", "i8mm", "asimdhp", "sve", "sve2", "bf16")
X86_FEATURES = ("sse4_2", "avx", "avx2", "fma", "avx512f", "avx512bw", "avx512_vnni", "avx_vnni",
                "avx512_bf16", "amx_int8")
RUNTIME_PACKAGES = ("numpy", "ai-edge-litert", "onnxruntime", "pillow", "edgeshuffle")

_ARM_MACHINES = ("aarch64", "arm64", "armv7l", "armv8l", "armv6l", "arm")
_X86_MACHINES = ("x86_64", "amd64", "i386", "i686", "x86")

# /proc/cpuinfo "CPU part" of common ARM cores (implementer 0x41, Arm Ltd).
_ARM_PARTS = {
    "0xd03": "Cortex-A53", "0xd04": "Cortex-A35", "0xd05": "Cortex-A55", "0xd07": "Cortex-A57",
    "0xd08": "Cortex-A72", "0xd09": "Cortex-A73", "0xd0a": "Cortex-A75", "0xd0b": "Cortex-A76",
    "0xd0c": "Neoverse-N1", "0xd0d": "Cortex-A77", "0xd40": "Neoverse-V1", "0xd41": "Cortex-A78",
    "0xd44": "Cortex-X1", "0xd46": "Cortex-A510", "0xd47": "Cortex-A710", "0xd48": "Cortex-X2",
    "0xd49": "Neoverse-N2", "0xd4f": "Neoverse-V2", "0xd4d": "Cortex-A715", "0xd4e": "Cortex-X3",
    "0xd80": "Cortex-A520", "0xd81": "Cortex-A720", "0xd82": "Cortex-X4",
}


@dataclasses.dataclass(frozen=True)
class MachineInfo:
    cpu_model: str
    architecture: str  # platform.machine() of this Python (what the runtimes' kernels are built for)
    logical_cores: int
    usable_cores: int  # cores this process may run on (affinity, cgroup-free view)
    isa_features: tuple[str, ...]  # the ones that matter, from ARM_FEATURES / X86_FEATURES
    os: str
    python: str
    versions: dict[str, str]
    emulated: bool
    emulation_evidence: str | None = None

    @property
    def note(self) -> str | None:
        if self.emulated:
            return f"emulated ({self.emulation_evidence}): timings are not meaningful, correctness is"
        return None

    def to_dict(self) -> dict:
        return {**dataclasses.asdict(self), "isa_features": list(self.isa_features), "note": self.note}


def parse_cpuinfo(text: str) -> dict[str, str]:
    """The first value of each ``key : value`` line, plus ``processors``: the count of processor entries."""
    fields: dict[str, str] = {}
    processors = 0
    for line in text.splitlines():
        key, sep, value = line.partition(":")
        if not sep:
            continue
        key = key.strip().lower()
        if key == "processor":
            processors += 1
        fields.setdefault(key, value.strip())
    fields["processors"] = str(processors)
    return fields


def cpuinfo_architecture(fields: dict[str, str]) -> str | None:
    """``"arm"`` or ``"x86"`` as /proc/cpuinfo describes the CPU; None if it does not say."""
    if "flags" in fields and ("vendor_id" in fields or "cpu family" in fields):
        return "x86"
    if "features" in fields and ("cpu implementer" in fields or "cpu architecture" in fields):
        return "arm"
    return None


def isa_features(fields: dict[str, str], architecture: str) -> tuple[str, ...]:
    """The features that matter for inference kernels, in a fixed order.

    On AArch64, Advanced SIMD (``asimd``) *is* NEON, so ``neon`` is reported
    for it too.
    """
    kind = _kind(architecture) or cpuinfo_architecture(fields)
    if kind == "arm":
        flags = set(fields.get("features", "").split())
        if "asimd" in flags:
            flags.add("neon")
        return tuple(f for f in ARM_FEATURES if f in flags)
    if kind == "x86":
        flags = set(fields.get("flags", "").split())
        return tuple(f for f in X86_FEATURES if f in flags)
    return ()


def cpu_model(fields: dict[str, str]) -> str:
    """x86: ``model name``. ARM: the core named from ``CPU part`` and the board from ``Model``."""
    if fields.get("model name"):
        return fields["model name"]
    if cpuinfo_architecture(fields) == "arm":
        part = fields.get("cpu part", "").lower()
        name = _ARM_PARTS.get(part) if fields.get("cpu implementer", "").lower() == "0x41" else None
        board = fields.get("model") or _device_tree_model()
        core = name or f"ARM implementer {fields.get('cpu implementer', '?')} part {part or '?'}"
        return f"{core} ({board})" if board else core
    return platform.processor() or "unknown"


def _device_tree_model() -> str | None:
    try:
        return Path("/proc/device-tree/model").read_bytes().rstrip(b"\0").decode("utf-8", "replace") or None
    except OSError:
        return None


def _kind(architecture: str) -> str | None:
    machine = architecture.lower()
    if machine in _ARM_MACHINES or machine.startswith("armv"):
        return "arm"
    if machine in _X86_MACHINES:
        return "x86"
    return None


def detect_emulation(architecture: str, fields: dict[str, str], environ: dict[str, str] | None = None
                     ) -> str | None:
    """Evidence that this process runs under emulation (qemu-user), or None if none was found.

    Checks: /proc/cpuinfo describing another architecture than the one this
    Python was built for (qemu-user passes the host's through), and the
    environment variables qemu-user reads (``QEMU_LD_PREFIX``, ``QEMU_CPU``...).
    """
    environ = os.environ if environ is None else environ
    described = cpuinfo_architecture(fields)
    running = _kind(architecture)
    if described and running and described != running:
        return f"Python is {architecture} but /proc/cpuinfo describes an {described} CPU (qemu-user?)"
    qemu = sorted(k for k in environ if k.startswith("QEMU_"))
    if qemu:
        return f"qemu-user environment variables set: {', '.join(qemu)}"
    return None


def _versions() -> dict[str, str]:
    versions = {}
    for package in RUNTIME_PACKAGES:
        try:
            versions[package] = importlib.metadata.version(package)
        except importlib.metadata.PackageNotFoundError:
            continue
    return versions


def _usable_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def machine_info(cpuinfo_path: Path = Path("/proc/cpuinfo")) -> MachineInfo:
    """Describe this machine (Linux reads /proc/cpuinfo; elsewhere ``platform`` only)."""
    try:
        fields = parse_cpuinfo(Path(cpuinfo_path).read_text(errors="replace"))
    except OSError:
        fields = {"processors": "0"}
    architecture = platform.machine() or "unknown"
    evidence = detect_emulation(architecture, fields)
    if evidence:
        log.warning("%s; timings are not meaningful", evidence)
    try:
        release = platform.freedesktop_os_release().get("PRETTY_NAME")
    except OSError:
        release = None
    os_name = f"{platform.system()} {platform.release()}" + (f" ({release})" if release else "")
    return MachineInfo(
        cpu_model=cpu_model(fields),
        architecture=architecture,
        logical_cores=os.cpu_count() or int(fields.get("processors", "0")) or 1,
        usable_cores=_usable_cores(),
        isa_features=isa_features(fields, architecture),
        os=os_name,
        python=f"{platform.python_implementation()} {platform.python_version()}",
        versions=_versions(),
        emulated=evidence is not None,
        emulation_evidence=evidence,
    )
