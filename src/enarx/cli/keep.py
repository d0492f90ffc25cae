"""``enarx keep image build|measure``: the VM keeps' guest image and its expected launch measurements."""

from __future__ import annotations

import json
from pathlib import Path

import click

KERNEL_HELP = ("Guest kernel: a Debian linux-image .deb (its modules come along) or a bzImage with the virtio, "
               "SEV/TDX guest and configfs TSM drivers built in. Default: Debian's cloud kernel (kvm). "
               "Confidential keeps need ≥ 6.7, e.g. Debian trixie's linux-image-cloud-amd64.")


@click.group()
def keep() -> None:
    """Manage the guest image that VM keeps (kvm, sev, tdx) boot."""


@keep.group()
def image() -> None:
    """Build the guest image and compute its launch measurements."""


def _image(kernel: str | None, refresh: bool = False):
    from enarx.backends.vm import image as images
    from enarx.backends.vm.kernel import debian_kernel

    cache = images.vm_cache()
    if refresh and kernel is None:
        debian_kernel(cache, refresh=True)
    return images.load_or_build(cache, images.default_sources(cache, Path(kernel) if kernel else None))


@image.command()
@click.option("--kernel", envvar="ENARX_KERNEL", type=click.Path(exists=True, dir_okay=False), help=KERNEL_HELP)
@click.option("--out", type=click.Path(file_okay=False), help="Also copy the image into this directory "
              "(use it with ENARX_VM_IMAGE).")
@click.option("--refresh-kernel", is_flag=True, help="Ask apt for a newer Debian kernel first.")
def build(kernel: str | None, out: str | None, refresh_kernel: bool) -> None:
    """Build the guest image (reproducibly: the same inputs give the same bytes) or find it in the cache."""
    import shutil

    built = _image(kernel, refresh_kernel)
    if out:
        Path(out).mkdir(parents=True, exist_ok=True)
        for name in ("vmlinux", "bzImage", "initrd.img", "manifest.json"):
            shutil.copyfile(built.directory / name, Path(out) / name)
    click.echo(f"image: {Path(out) if out else built.directory}")
    for name, digest in sorted(built.manifest["digests"].items()):
        click.echo(f"  {name:<10} sha256:{digest}  ({built.manifest['sizes'][name]} bytes)")


@image.command()
@click.option("--kernel", envvar="ENARX_KERNEL", type=click.Path(exists=True, dir_okay=False), help=KERNEL_HELP)
@click.option("--ovmf", envvar="ENARX_OVMF", type=click.Path(exists=True, dir_okay=False),
              help="SEV-SNP: OVMF built from edk2's OvmfPkg/AmdSev (OVMF.amdsev.fd).")
@click.option("--tdvf", type=click.Path(exists=True, dir_okay=False),
              help="TDX: TDVF built from edk2's OvmfPkg/IntelTdx (OVMF.inteltdx.fd).")
@click.option("--package", "package", type=click.Path(exists=True),
              help="A workload (.wasm or package directory): also print the launch data binding it.")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def measure(kernel: str | None, ovmf: str | None, tdvf: str | None, package: str | None, as_json: bool) -> None:
    """Print the image's digests and, given firmware, the launch measurements a Steward should expect."""
    from enarx.backends.vm.launch import confidential_cmdline

    built = _image(kernel)
    doc: dict = {"image": str(built.directory), "digests": built.manifest["digests"],
                 "cmdline": confidential_cmdline()}
    if ovmf:
        from enarx.backends.vm.measure import SnpInputs, snp_launch_digest

        digest = snp_launch_digest(SnpInputs(Path(ovmf), built.bzimage, built.initrd, confidential_cmdline()))
        doc["sev-snp"] = {"measurement": digest.hex(), "vcpus": 1, "vcpu_type": "EPYC-v4", "guest_features": 1}
    if tdvf:
        from enarx.backends.vm.measure import tdx_component_digests, tdx_mrtd

        doc["tdx"] = {"mrtd": tdx_mrtd(Path(tdvf)).hex(),
                      **tdx_component_digests(built.bzimage, built.initrd, confidential_cmdline())}
    if package:
        from enarx.backends.vm.launch import package_binding

        doc["workload"] = {k: v.hex() for k, v in package_binding(package).items()}
    if as_json:
        click.echo(json.dumps(doc, indent=2))
        return
    click.echo(f"image: {doc['image']}")
    for name, digest in sorted(doc["digests"].items()):
        click.echo(f"  {name:<10} sha256:{digest}")
    click.echo(f"  cmdline    {doc['cmdline']!r}")
    for section in ("sev-snp", "tdx", "workload"):
        if section in doc:
            click.echo(f"{section}:")
            for key, value in doc[section].items():
                click.echo(f"  {key}: {value}")
