"""JavaScript in a keep: QuickJS-ng (from the quickjs-ng sdist) built for wasm32-wasi with our runner
(examples/javascript/qjs.c), run through the real `enarx run`."""

from __future__ import annotations

import json

from conftest import ROOT, enarx, example

SCRIPTS = ROOT / "examples" / "javascript"


def engine() -> str:
    return str(example("javascript", "main"))


def run_script(name: str, *args: str, input: bytes | None = None, env: tuple[str, ...] = ()):
    options = [a for item in env for a in ("--env", item)]
    return enarx("run", "--dir", f"{SCRIPTS}::/js", *options, engine(), f"/js/{name}", *args, input=input)


def test_hello():
    proc = run_script("hello.js")
    assert (proc.returncode, proc.stdout, proc.stderr) == (0, b"Hello, world!\n", b"")


def test_args_and_env():
    proc = run_script("args_env.js", "one", "two words", "--flag", env=("GREETING=hi there", "EMPTY="))
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.decode().splitlines() == [
        "argv[0]=main.wasm", "argv[1]=/js/args_env.js", "argv[2]=one", "argv[3]=two words", "argv[4]=--flag",
        "env:GREETING=hi there", "env:EMPTY="]


def test_stdin_round_trip_of_unicode_text():
    text = ("h\u00e9llo, \u4e16\u754c \U0001f600 " * 40000 + "\n").encode()
    proc = run_script("cat.js", input=text)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == text
    assert proc.stderr.decode() == f"copied {len(text.decode().encode('utf-16-le')) // 2} characters\n"


def test_script_from_stdin_and_from_the_command_line():
    proc = enarx("run", engine(), "-", "a", input=b"console.log(process.argv.slice(1).join(','))")
    assert (proc.returncode, proc.stdout) == (0, b"-,a\n")
    proc = enarx("run", engine(), "-e", "console.log(6 * 7, [1, 'x'], {k: null})")
    assert (proc.returncode, proc.stdout) == (0, b'42 [1,"x"] {"k":null}\n')


def test_exit_status_and_uncaught_errors():
    proc = enarx("run", engine(), "-e", "process.exit(7)")
    assert proc.returncode == 7 and b"Error" not in proc.stderr  # the workload's own status
    proc = enarx("run", engine(), "-e", "throw new TypeError('boom')")
    assert proc.returncode == 1 and proc.stderr.decode().startswith("Uncaught TypeError: boom\n")
    proc = enarx("run", engine(), "-e", "Promise.reject(new Error('nope'))")
    assert proc.returncode == 1 and proc.stderr.decode() == "Uncaught (in promise) Error: nope\n"
    proc = enarx("run", engine(), "-e", "Promise.reject(1).catch(() => console.log('handled'))")
    assert (proc.returncode, proc.stdout) == (0, b"handled\n")
    proc = enarx("run", engine(), "-e", "function f() { return f() + 1 } try { f() } catch (e) { console.log(e.name) }")
    assert (proc.returncode, proc.stdout) == (0, b"RangeError\n")  # deep recursion is catchable, not a trap
    proc = enarx("run", engine(), "/nowhere/app.js")
    assert proc.returncode == 2 and b"/nowhere/app.js: cannot open the script" in proc.stderr


def test_javascript_package():
    """The package directory: main.wasm, Enarx.toml, app/ preopened read-only; app.js greets."""
    package = example("javascript", "main").parent
    data = "caf\u00e9 \U0001f600\n" * 1000
    proc = enarx("run", package, "extra", input=data.encode())
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(proc.stdout)
    units = data.encode("utf-16-le")
    digest = 0x811C9DC5
    for i in range(0, len(units), 2):
        digest = ((digest ^ int.from_bytes(units[i:i + 2], "little")) * 0x01000193) & 0xFFFFFFFF
    assert doc == {"greeting": "Hello from JavaScript in a keep!", "engine": "QuickJS-ng",
                   "argv": ["--from-config", "extra"], "fd_names": ["stdin", "stdout", "stderr", "/app"],
                   "stdin_chars": len(units) // 2, "stdin_fnv1a": f"{digest:08x}", "answer": 42}
