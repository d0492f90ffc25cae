#!/usr/bin/env bash
# `make demo`: run example workloads in keeps end to end, then attest simulated hardware evidence.
set -euo pipefail
cd "$(dirname "$0")/.."
ENARX=(.venv/bin/enarx)
B=examples/build
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

step "Which keep backends can run here?"
"${ENARX[@]}" platform info | grep 'Backend:'

step "Hello from four languages, each in its own keep"
for lang in c rust go zig; do
    printf '%-5s ' "$lang:"; "${ENARX[@]}" run "$B/$lang/hello.wasm"
done

step "A package with an Enarx.toml: args, env, FD_COUNT/FD_NAMES, a read-only data directory"
mkdir -p "$WORK/pkg/data"
cp "$B/rust/args_env.wasm" "$WORK/pkg/main.wasm"
cat > "$WORK/pkg/Enarx.toml" <<'TOML'
args = ["--greeting", "hello"]
[env]
MODE = "demo"
[[files]]
kind = "stdin"
[[files]]
kind = "stdout"
[[files]]
kind = "stderr"
[[files]]
kind = "dir"
path = "data"
name = "/data"
TOML
"${ENARX[@]}" config check "$WORK/pkg/Enarx.toml" | head -3
"${ENARX[@]}" run "$WORK/pkg" extra-arg

step "2 MiB through the Go workload's stdin and back"
head -c 2097152 /dev/urandom > "$WORK/in.bin"
"${ENARX[@]}" run "$B/go/cat.wasm" < "$WORK/in.bin" | cmp - "$WORK/in.bin" && echo "round trip: identical"

step "Exit status, traps and limits"
set +e
"${ENARX[@]}" run "$B/c/exit_code.wasm" 42 2>/dev/null; echo "exit_code 42 -> status $?"
"${ENARX[@]}" run "$B/c/trap.wasm" 2>&1 | tail -1; echo "status ${PIPESTATUS[0]}"
"${ENARX[@]}" run --timeout 1 "$B/c/spin.wasm"; echo "status $?"
"${ENARX[@]}" run --memory-limit 64MiB "$B/c/memhog.wasm"; echo "status $?"
set -e

step "Attestation: simulated SEV-SNP evidence is refused by the real AMD roots…"
"${ENARX[@]}" attest simulate snp --out "$WORK/snp" --measurement "$(printf 'ab%.0s' {1..48})" >/dev/null
set +e
"${ENARX[@]}" attest verify "$WORK/snp/report.bin" --collateral "$WORK/snp" 2>/dev/null | head -1
echo "status $? (3 = verification failed)"
set -e
step "…and accepted, with a warning, only when its test root is trusted explicitly"
"${ENARX[@]}" attest verify "$WORK/snp/report.bin" --collateral "$WORK/snp" \
    --trust-anchor "$WORK/snp/root.pem" 2>&1 | grep -E 'trusted|measurement|warning: this'
if [ -d ../shared/corpora/sev-snp ]; then
    step "Real AMD evidence from the corpus, verified as of its time"
    C=../shared/corpora/sev-snp
    "${ENARX[@]}" attest verify "$C/milan-virtee/report.bin" --collateral "$C/milan-virtee/vcek.der" \
        --collateral "$C/ca/ask_ark_milan.pem" --collateral "$C/crl/ark_milan.crl.der" \
        --at 2023-04-04T19:23:43Z 2>/dev/null | head -2
fi
printf '\nDemo finished.\n'
