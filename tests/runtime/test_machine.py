"""Machine description from /proc/cpuinfo texts of known boards (no hardware needed)."""

from __future__ import annotations

from edgeshuffle.machine import cpu_model, detect_emulation, isa_features, machine_info, parse_cpuinfo

# A Raspberry Pi 5 (Cortex-A76): dot product, no i8mm.
PI5 = """processor\t: 0
BogoMIPS\t: 108.00
Features\t: fp asimd evtstrm aes pmull sha1 sha2 crc32 atomics fphp asimdhp cpuid asimdrdm lrcpc dcpop asimddp
CPU implementer\t: 0x41
CPU architecture: 8
CPU variant\t: 0x4
CPU part\t: 0xd0b
CPU revision\t: 1

processor\t: 1
Features\t: fp asimd evtstrm aes pmull sha1 sha2 crc32 atomics fphp asimdhp cpuid asimdrdm lrcpc dcpop asimddp
CPU implementer\t: 0x41
CPU part\t: 0xd0b

Model\t\t: Raspberry Pi 5 Model B Rev 1.0
"""
# An ARMv9 core with i8mm and SVE (Neoverse-V2 class).
V2 = "processor : 0\nFeatures : fp asimd asimddp sve i8mm bf16 sve2\nCPU implementer : 0x41\nCPU part : 0xd4f\n"
X86 = """processor : 0
vendor_id : GenuineIntel
cpu family : 6
model name : Intel(R) Xeon(R) Platinum 8375C CPU @ 2.90GHz
flags : fpu sse4_2 avx avx2 fma avx512f avx512bw avx512_vnni
"""


def test_arm_features_and_model():
    fields = parse_cpuinfo(PI5)
    assert fields["processors"] == "2"
    assert isa_features(fields, "aarch64") == ("neon", "asimd", "asimddp", "asimdhp")  # asimd is NEON
    assert cpu_model(fields) == "Cortex-A76 (Raspberry Pi 5 Model B Rev 1.0)"
    assert isa_features(parse_cpuinfo(V2), "aarch64") == ("neon", "asimd", "asimddp", "i8mm", "sve", "sve2",
                                                          "bf16")
    assert detect_emulation("aarch64", fields, environ={}) is None


def test_x86_features():
    fields = parse_cpuinfo(X86)
    assert isa_features(fields, "x86_64") == ("sse4_2", "avx", "avx2", "fma", "avx512f", "avx512bw",
                                              "avx512_vnni")
    assert cpu_model(fields).startswith("Intel(R) Xeon(R) Platinum 8375C")


def test_qemu_user_is_detected():
    # Under qemu-user an aarch64 Python reads the x86 host's /proc/cpuinfo.
    evidence = detect_emulation("aarch64", parse_cpuinfo(X86), environ={})
    assert evidence and "x86" in evidence
    assert detect_emulation("x86_64", parse_cpuinfo(X86), environ={"QEMU_CPU": "max"})


def test_this_machine(tmp_path):
    info = machine_info()
    assert info.logical_cores >= 1 and info.architecture and info.python.startswith("CPython 3.")
    assert {"numpy", "ai-edge-litert", "onnxruntime"} <= set(info.versions)
    fake = tmp_path / "cpuinfo"
    fake.write_text(PI5)
    described = machine_info(fake)
    assert described.cpu_model.startswith("Cortex-A76")
    if info.architecture == "x86_64":  # an ARM cpuinfo read by an x86 Python: not native
        assert described.emulated and described.to_dict()["note"].endswith("correctness is")
