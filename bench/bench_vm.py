"""VM keeps (kvm under QEMU's TCG emulator on machines without hardware KVM): boot to first output against a
bare QEMU boot of the same kernel with a trivial init, image size, memory per keep, and keeps at once.

The baseline boots the guest image's own kernel with the same QEMU options and a 200-byte static init that
writes one line (and powers off, or waits for the memory measurement). Both sides are timed from process
start to the first byte of output, side by side in every round.
"""

from __future__ import annotations

import os
import re
import struct
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from framework import quick, row

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))
ENARX = [sys.executable, "-m", "enarx", "run", "--backend", "kvm"]
HELLO = ROOT / "examples" / "build" / "c" / "hello.wasm"
ECHO = ROOT / "examples" / "build" / "c" / "echo_server.wasm"
GROUP = "vm"
MARKER = b"TRIVIAL-INIT-UP\n"
LISTEN = ('[[files]]\nkind = "stdin"\n[[files]]\nkind = "stdout"\n[[files]]\nkind = "stderr"\n'
          '[[files]]\nkind = "listen"\nname = "ingest"\nprot = "tcp"\naddr = "127.0.0.1"\nport = 0\n')


def trivial_init(*, power_off: bool) -> bytes:
    """A static x86-64 ELF: write(1, MARKER), then reboot(POWER_OFF) or pause() forever."""
    code = bytearray()
    code += b"\x48\xc7\xc0\x01\x00\x00\x00\x48\xc7\xc7\x01\x00\x00\x00"  # rax = write, rdi = 1
    lea_at = len(code)
    code += b"\x48\x8d\x35\x00\x00\x00\x00"  # rsi = &message (patched below)
    code += b"\x48\xc7\xc2" + struct.pack("<I", len(MARKER)) + b"\x0f\x05"  # rdx = len; syscall
    if power_off:  # reboot(LINUX_REBOOT_MAGIC1, MAGIC2, LINUX_REBOOT_CMD_POWER_OFF)
        code += b"\x48\xc7\xc0\xa9\x00\x00\x00\x48\xc7\xc7\xad\xde\xe1\xfe"
        code += b"\x48\xc7\xc6\x69\x19\x12\x28\x48\xc7\xc2\xdc\xfe\x21\x43\x0f\x05"
    code += b"\x48\xc7\xc0\x22\x00\x00\x00\x0f\x05\xeb\xf5"  # pause(); loop
    code[lea_at + 3:lea_at + 7] = struct.pack("<i", len(code) - (lea_at + 7))
    code += MARKER
    base, start = 0x400000, 64 + 56
    header = (b"\x7fELF\x02\x01\x01" + bytes(9) + struct.pack("<HHIQQQIHHHHHH", 2, 0x3E, 1, base + start, 64, 0, 0,
                                                                64, 56, 1, 0, 0, 0))
    phdr = struct.pack("<IIQQQQQQ", 1, 5, 0, base, base, start + len(code), start + len(code), 0x1000)
    return header + phdr + bytes(code)


def bare_initrd(folder: Path, *, power_off: bool) -> Path:
    from enarx.backends.vm import cpio

    path = folder / f"trivial-{power_off}.cpio"
    with open(path, "wb") as out:
        cpio.write(out, cpio.with_parents([cpio.char_device("dev/console", 5, 1),
                                           cpio.file("init", trivial_init(power_off=power_off), 0o755)]))
    return path


def bare_argv(image, initrd: Path) -> list[str]:
    from enarx.backends.vm import qemu
    from enarx.backends.vm.launch import cmdline_for

    return [qemu.qemu_binary(), "-M", "microvm", "-accel", "tcg,tb-size=64", "-cpu", qemu.TCG_CPU, "-m", "256M",
            "-nodefaults", "-no-user-config", "-display", "none", "-no-reboot", "-serial", "stdio",
            "-kernel", str(image.kernel), "-initrd", str(initrd), "-append", cmdline_for("tcg")]


def first_output(argv: list[str], *, until: bytes | None = None) -> float:
    """Seconds from process start to its first output line (containing ``until``); the process then ends."""
    start = time.perf_counter()
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL)
    assert proc.stdout is not None
    try:
        for line in proc.stdout:
            if until is None or until in line:
                return time.perf_counter() - start
        raise RuntimeError(f"no output from {argv[0]} (status {proc.wait()})")
    finally:
        proc.wait(timeout=120)


def rss_mib(pid: int) -> float:
    with open(f"/proc/{pid}/status") as fh:
        return int(re.search(r"VmRSS:\s+(\d+)", fh.read()).group(1)) / 1024


def qemu_child(parent: int) -> int:
    for _ in range(200):
        for pid in filter(str.isdigit, os.listdir("/proc")):
            try:
                with open(f"/proc/{pid}/stat") as fh:
                    fields = fh.read().rsplit(")", 1)[1].split()
                with open(f"/proc/{pid}/comm") as fh:
                    comm = fh.read().strip()
            except OSError:
                continue
            if int(fields[1]) == parent and comm.startswith("qemu-system"):
                return int(pid)
        time.sleep(0.05)
    raise RuntimeError("no QEMU process under the keep")


def serving_keeps(count: int, config: Path) -> tuple[float, list[float]]:
    """Start ``count`` echo keeps at once: seconds until all listen, and each QEMU's RSS then (MiB)."""
    start = time.perf_counter()
    procs = [subprocess.Popen([*ENARX, "--wasmcfgfile", str(config), str(ECHO)], stdin=subprocess.DEVNULL,
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE) for _ in range(count)]
    try:
        for proc in procs:
            assert proc.stderr is not None
            for line in proc.stderr:
                if b"listening on" in line:
                    break
            else:
                raise RuntimeError("a keep ended before listening")
        elapsed = time.perf_counter() - start
        time.sleep(1)  # settled, idle
        return elapsed, [rss_mib(qemu_child(p.pid)) for p in procs]
    finally:
        for proc in procs:
            proc.terminate()
        for proc in procs:
            proc.wait(timeout=60)


def collect(rounds: int) -> list[dict]:
    from enarx.backends.vm import image as images

    os.environ["ENARX_KVM_ACCEL"] = "tcg"
    cache = images.vm_cache()
    image = images.load_or_build(cache, images.default_sources(cache))
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        os.environ["ENARX_CACHE_DIR"] = str(folder / "enarx")
        config = folder / "Enarx.toml"
        config.write_text(LISTEN)
        bare, bare_idle = bare_initrd(folder, power_off=True), bare_initrd(folder, power_off=False)
        first_output([*ENARX, str(HELLO)])  # warm: the module compiled for the guest, the page cache
        boot = []
        for _ in range(rounds):
            baseline = first_output(bare_argv(image, bare), until=MARKER.strip())
            boot.append((baseline, first_output([*ENARX, str(HELLO)])))
        proc = subprocess.Popen(bare_argv(image, bare_idle), stdout=subprocess.PIPE, stdin=subprocess.DEVNULL)
        try:
            assert proc.stdout is not None
            for line in proc.stdout:
                if MARKER.strip() in line:
                    break
            time.sleep(1)
            bare_rss = rss_mib(proc.pid)
        finally:
            proc.kill()
            proc.wait()
        one_time, one_rss = serving_keeps(1, config)
        many = 2 if quick() else 4
        many_time, many_rss = serving_keeps(many, config)
    sizes = image.manifest["sizes"]
    return [
        row(GROUP, "kvm keep (TCG): `enarx run --backend kvm hello.wasm` to first output vs a bare QEMU boot "
            "of the same kernel with a trivial init", unit="s", baseline_label="bare QEMU, trivial init",
            samples=boot, target=2.5, compare="<="),
        row(GROUP, "guest image: initramfs (Python, wasmtime, cryptography, the keep runtime, uncompressed) vs "
            "the kernel it boots", unit="MiB", baseline_label="kernel (vmlinux)",
            samples=[(sizes["vmlinux"] / 2**20, sizes["initrd.img"] / 2**20)], target=None, compare="<=",
            note=f"kernel package {image.manifest['kernel_package']}"),
        row(GROUP, "memory per keep: QEMU RSS of an idle kvm keep (TCG) serving TCP vs QEMU idling a trivial init",
            unit="MiB", baseline_label="bare QEMU, trivial init", samples=[(bare_rss, one_rss[0])], target=None,
            compare="<="),
        row(GROUP, f"{many} kvm keeps (TCG) started at once on this machine: time until all serve vs one keep",
            unit="s", baseline_label="one keep", samples=[(one_time, many_time)], target=None, compare="<=",
            note=f"{many} keeps ran at once, {sum(many_rss):.0f} MiB RSS in all; TCG boots are CPU-bound"),
    ]


if __name__ == "__main__":
    import json

    print(json.dumps(collect(2 if quick() else 3), indent=2))
