"""Compile Python sources to unchecked-hash ``.pyc`` bytes, reproducibly (run as a fresh ``python -I -S``).

``marshal`` marks an object for back-references by its reference count, which depends on what the
interpreter has loaded; a fresh isolated interpreter that compiles the same files in the same order gives
the same bytes. Unchecked-hash pycs are never compared against a source (the image ships none) and never
rewritten. Reads ``[[source, name_in_image], ...]`` as JSON on stdin; writes ``<out>/<index>.pyc``.
"""

import importlib.util
import json
import os
import sys


def main() -> None:
    out = sys.argv[1]
    for index, (source, name) in enumerate(json.load(sys.stdin)):
        with open(source, "rb") as fh:
            data = fh.read()
        code = compile(data, name, "exec", dont_inherit=True)
        pyc = importlib._bootstrap_external._code_to_hash_pyc(code, importlib.util.source_hash(data), False)
        with open(os.path.join(out, f"{index}.pyc"), "wb") as fh:
            fh.write(pyc)


if __name__ == "__main__":
    main()
