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
"${ENARX[@]}" config check "$WORK/pkg/Enarx.toml" | sed -n 1,2p
"${ENARX[@]}" run "$WORK/pkg" extra-arg

step "CPython 3.11 in a keep (interpreter + stdlib as a package with an Enarx.toml)"
echo -n "data to hash" | "${ENARX[@]}" run "$B/python" demo-arg

step "JavaScript in a keep (QuickJS-ng built for wasm32-wasi): a package, then a script read from stdin"
echo -n "data to digest" | "${ENARX[@]}" run "$B/javascript" demo-arg
echo 'console.log("squares:", [1, 2, 3].map((x) => x * x).join(" "))' | "${ENARX[@]}" run "$B/javascript/main.wasm" -

step "2 MiB through the Go workload's stdin and back"
head -c 2097152 /dev/urandom > "$WORK/in.bin"
"${ENARX[@]}" run "$B/go/cat.wasm" < "$WORK/in.bin" | cmp - "$WORK/in.bin" && echo "round trip: identical"

step "Exit status, traps and limits"
set +e
"${ENARX[@]}" run "$B/c/exit_code.wasm" 42 2>/dev/null; echo "exit_code 42 -> status $?"
"${ENARX[@]}" run "$B/c/trap.wasm" 2>&1 | sed -n '$p'; echo "status ${PIPESTATUS[0]}"
"${ENARX[@]}" run --timeout 1 "$B/c/spin.wasm"; echo "status $?"
"${ENARX[@]}" run --memory-limit 64MiB "$B/c/memhog.wasm"; echo "status $?"
set -e

step "Attestation: simulated SEV-SNP evidence is refused by the real AMD roots…"
"${ENARX[@]}" attest simulate snp --out "$WORK/snp" --measurement "$(printf 'ab%.0s' {1..48})" >/dev/null
set +e
"${ENARX[@]}" attest verify "$WORK/snp/report.bin" --collateral "$WORK/snp" 2>/dev/null | sed -n 1p
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
        --at 2023-04-04T19:23:43Z 2>/dev/null | sed -n 1,2p
fi
step "An attested keep: it proves itself to a Steward, then serves TLS with the Steward-issued certificate"
SIM="$WORK/simulator"
"${ENARX[@]}" attest simulate pki "$SIM" > /dev/null 2>&1  # test PKIs, and the collateral the Steward needs
MEASUREMENT=$(.venv/bin/python -c "import hashlib,sys; print(hashlib.sha384(open(sys.argv[1],'rb').read()).hexdigest())" "$B/c/echo_server.wasm")
cat > "$WORK/policy.toml" <<TOML
[measurements.measurement]
allow = ["$MEASUREMENT"]
TOML
"${ENARX[@]}" steward serve --addr 127.0.0.1 --port 0 --generate-ca "Demo Steward" --write-ca "$WORK/ca" \
    --policy "$WORK/policy.toml" --insecure-trust-anchor "$SIM/snp/chain.pem" --collateral "$SIM/collateral" \
    > /dev/null 2> "$WORK/steward.log" &
STEWARD=$!
for _ in $(seq 100); do grep -qo "http://127.0.0.1:[0-9]*" "$WORK/steward.log" 2>/dev/null && break; sleep 0.1; done
URL=$(grep -o 'http://127.0.0.1:[0-9]*' "$WORK/steward.log" | sed -n 1p)
echo "Steward at $URL, policy: only the echo server's measurement"
cat > "$WORK/Enarx.toml" <<TOML
steward = "$URL/"
[[files]]
kind = "stdin"
[[files]]
kind = "stdout"
[[files]]
kind = "stderr"
[[files]]
kind = "listen"
name = "ingest"
prot = "tls"
addr = "127.0.0.1"
port = 0
TOML
"${ENARX[@]}" run --wasmcfgfile "$WORK/Enarx.toml" --simulate-tee sev-snp --simulator-pki "$SIM" \
    "$B/c/echo_server.wasm" 2> "$WORK/keep.log" &
KEEP=$!
for _ in $(seq 200); do grep -q 'listening on' "$WORK/keep.log" 2>/dev/null && break; sleep 0.1; done
grep -E 'warning|listening' "$WORK/keep.log"
PORT=$(grep -o 'listening on .*' "$WORK/keep.log" | grep -o '[0-9]*$')
.venv/bin/python - "$PORT" "$WORK/ca/ca.crt" <<'PY'
import json, socket, ssl, sys
from cryptography import x509
from enarx.steward.issuer import read_claims
ctx = ssl.create_default_context(cafile=sys.argv[2]); ctx.check_hostname = False
with ctx.wrap_socket(socket.create_connection(("127.0.0.1", int(sys.argv[1]))), server_hostname="keep") as s:
    s.sendall(b"hello, attested keep"); print("echo over TLS 1.3, chain verified up to the Steward CA:", s.recv(64))
    claims = read_claims(x509.load_der_x509_certificate(s.getpeercert(binary_form=True)))
print("claims in the keep's certificate:", json.dumps({k: claims[k] for k in ("tee", "tcb_status", "debug", "policy")}))
PY
kill "$KEEP" 2>/dev/null; wait "$KEEP" 2>/dev/null || true
step "The same keep with another workload is refused by that Steward, before the workload runs"
set +e
"${ENARX[@]}" run --wasmcfgfile "$WORK/Enarx.toml" --simulate-tee sev-snp --simulator-pki "$SIM" \
    "$B/c/hello.wasm" 2>&1 | grep -v '^warning' | cut -c1-160; echo "status ${PIPESTATUS[0]}"
set -e
kill "$STEWARD" 2>/dev/null; wait "$STEWARD" 2>/dev/null || true

step "A registry: publish a package to Drawbridge, deploy it by name"
wait_for() { for _ in $(seq 200); do grep -q "$2" "$1" 2>/dev/null && return; sleep 0.1; done; cat "$1"; exit 1; }
.venv/bin/python scripts/demo_registry_services.py "$WORK/reg" & SERVICES=$!
for _ in $(seq 200); do [ -s "$WORK/reg/token" ] && break; sleep 0.1; done
"${ENARX[@]}" steward serve --addr 127.0.0.1 --port 0 --generate-ca "Registry Steward" --write-ca "$WORK/steward" \
    --insecure-trust-anchor "$SIM/snp/chain.pem" --collateral "$SIM/collateral" \
    > /dev/null 2> "$WORK/steward2.log" & STEWARD2=$!
wait_for "$WORK/steward2.log" "listening on"
STEWARD_URL=$(grep -o 'http://127.0.0.1:[0-9]*' "$WORK/steward2.log" | sed -n 1p)/
mkdir "$WORK/store"
"${ENARX[@]}" drawbridge serve --addr 127.0.0.1 --port 0 --store "$WORK/store" \
    --tls-crt "$WORK/reg/drawbridge.crt" --tls-key "$WORK/reg/drawbridge.key" --ca "$WORK/steward/ca.crt" \
    --oidc-issuer "$(sed -n 1p "$WORK/reg/issuer")" --oidc-audience "$(sed -n 2p "$WORK/reg/issuer")" \
    2> "$WORK/drawbridge.log" & DRAWBRIDGE=$!
trap 'kill $SERVICES $STEWARD2 $DRAWBRIDGE 2>/dev/null; rm -rf "$WORK"' EXIT
wait_for "$WORK/drawbridge.log" "listening on"
HOST=$(grep -o 'https://127.0.0.1:[0-9]*' "$WORK/drawbridge.log" | sed 's|https://||')
echo "Drawbridge at https://$HOST/ (TLS from a private CA), keeps certified by the Steward at $STEWARD_URL"
export ENARX_CA_BUNDLE="$WORK/reg/ca.pem"
export ENARX_INSECURE_AUTH_TOKEN; ENARX_INSECURE_AUTH_TOKEN=$(cat "$WORK/reg/token")
"${ENARX[@]}" user register "$HOST/alice"
"${ENARX[@]}" repo register "$HOST/alice/hello"
"${ENARX[@]}" package publish "$HOST/alice/hello:0.1.0" "$B/rust/hello.wasm"
"${ENARX[@]}" package info "$HOST/alice/hello:0.1.0" | tr -d '\n' | cut -c1-110; echo " …"
printf 'enarx deploy %s: ' "$HOST/alice/hello:0.1.0"; "${ENARX[@]}" deploy "$HOST/alice/hello:0.1.0"

step "A private package: only a keep that attests (simulated SEV-SNP) and names it may fetch it"
cat > "$WORK/keep-policy.toml" <<'TOML'
tees = ["sev-snp"]        # the keep's certificate must show SEV-SNP evidence verified by the Steward
allow_insecure = true     # …here simulated, under the simulator's test root
TOML
"${ENARX[@]}" repo register --private --keep-policy "$WORK/keep-policy.toml" "$HOST/alice/secret"
"${ENARX[@]}" package publish "$HOST/alice/secret:1.0.0" "$WORK/pkg"
set +e
echo "A keep that has not attested is refused:"
"${ENARX[@]}" deploy "$HOST/alice/secret:1.0.0" 2>&1 | cut -c1-160; echo "status ${PIPESTATUS[0]}"
set -e
echo "The keep attests first (its evidence binds the tag's tree digest), then fetches with its certificate:"
"${ENARX[@]}" deploy --steward "$STEWARD_URL" --simulate-tee sev-snp --simulator-pki "$SIM" \
    "$HOST/alice/secret:1.0.0" extra-arg 2>&1 | grep -v '^warning'
printf '\nDemo finished.\n'
