"""The guest image is reproducible: the same inputs give the same bytes; a runtime change changes them."""

from __future__ import annotations

import shutil
from pathlib import Path

from enarx.backends.vm import image


def test_rebuilding_from_the_same_inputs_gives_the_same_bytes(vm_image, tmp_path):
    sources = image.default_sources(image_cache(vm_image))
    assert image.image_key(sources) == vm_image.directory.name  # the cached image is these sources'
    rebuilt = image.build(tmp_path, sources)  # in another directory, by another process's compiler
    assert rebuilt.manifest["digests"] == vm_image.manifest["digests"]
    assert (tmp_path / "initrd.img").read_bytes() == vm_image.initrd.read_bytes()


def test_a_change_in_the_runtime_changes_the_image(vm_image, tmp_path):
    runtime = tmp_path / "src" / "enarx"
    shutil.copytree(image.ENARX_ROOT, runtime, ignore=shutil.ignore_patterns("__pycache__"))
    keep = runtime / "runtime" / "keep.py"
    keep.write_text(keep.read_text() + "\nRUNTIME_REVISION = 2\n")
    sources = image.default_sources(image_cache(vm_image))._replace(enarx_root=runtime)
    assert image.image_key(sources) != vm_image.directory.name
    (tmp_path / "out").mkdir()
    changed = image.build(tmp_path / "out", sources)
    assert changed.manifest["digests"]["initrd.img"] != vm_image.manifest["digests"]["initrd.img"]
    assert changed.manifest["digests"]["vmlinux"] == vm_image.manifest["digests"]["vmlinux"]


def image_cache(vm_image) -> Path:
    return vm_image.directory.parent.parent  # <vm cache>/images/<key>
