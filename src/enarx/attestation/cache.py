"""Collateral cache: fetch from AMD KDS and Intel PCS *ahead of time*, load offline, move as a bundle.

Verification never calls this module (it reads a :class:`CollateralSet`); fetching is a separate,
explicit step (``enarx attest cache fetch``), so the verify path never waits on — or fails because of —
a vendor endpoint. Each fetched item is recorded in ``index.json`` with its URL, file, fetch time and
*freshness horizon*: a CRL's ``nextUpdate``, an Intel document's ``nextUpdate``, a certificate's
``notAfter``. A fetch for an item whose horizon is still ahead is answered from disk; :meth:`refresh`
re-fetches only items past their horizon.

Bundles (``export_bundle`` / ``import_bundle``) are ``.tar.gz`` files with a ``MANIFEST.json`` of SHA-256
digests, for air-gapped sites: import verifies every digest and refuses paths outside the cache.
"""

from __future__ import annotations

import hashlib
import io
import json
import tarfile
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path, PurePosixPath
from typing import Any

from enarx.attestation.collateral import load_collateral
from enarx.attestation.model import AttestationError, CollateralSet
from enarx.attestation.pki import Cert, CertificateFormatError, Crl, split_pem

KDS_URL = "https://kdsintf.amd.com"
PCS_URL = "https://api.trustedservices.intel.com"
INTEL_ROOT_CRL_URL = "https://certificates.trustedservices.intel.com/IntelSGXRootCA.der"
INDEX = "index.json"
MANIFEST = "MANIFEST.json"
MAX_RESPONSE = 8 << 20
MAX_BUNDLE_FILES = 4096  # a real cache holds tens of files
MAX_BUNDLE_BYTES = 256 << 20


class CacheError(AttestationError):
    """A fetch failed (network, HTTP status, unexpected content) or a bundle is unusable."""

    reason = "cache"


@dataclass(frozen=True)
class Response:
    status: int
    body: bytes
    headers: dict[str, str]


Transport = Callable[[str, float], Response]


def urllib_transport(url: str, timeout: float) -> Response:
    """The default transport: a plain HTTP(S) GET with ``urllib``."""
    request = urllib.request.Request(url, headers={"User-Agent": "enarx-python collateral cache"})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as resp:
            body = resp.read(MAX_RESPONSE + 1)
            return Response(resp.status, body, {k.lower(): v for k, v in resp.headers.items()})
    except urllib.error.HTTPError as exc:
        return Response(exc.code, exc.read(4096), {k.lower(): v for k, v in exc.headers.items()})
    except (urllib.error.URLError, OSError, ValueError) as exc:
        raise CacheError(f"GET {url} failed: {getattr(exc, 'reason', exc)}") from None


class CollateralCache:
    """A directory of fetched collateral plus ``index.json``; :meth:`load` works with no network at all."""

    def __init__(self, directory: str | Path, *, kds_url: str = KDS_URL, pcs_url: str = PCS_URL,
                 transport: Transport | None = None, timeout: float = 30.0,
                 clock: Callable[[], datetime] | None = None):
        self.directory = Path(directory)
        self.kds_url = kds_url.rstrip("/")
        self.pcs_url = pcs_url.rstrip("/")
        self.transport = transport or urllib_transport
        self.timeout = timeout
        self.clock = clock or (lambda: datetime.now(UTC))

    # -- offline --------------------------------------------------------------------------------
    def load(self) -> CollateralSet:
        """Everything in the cache as a :class:`CollateralSet` (no network)."""
        files = [self.directory / entry["file"] for entry in self._index().values()]
        return load_collateral([f for f in files if f.is_file()])

    def _index(self) -> dict[str, dict[str, Any]]:
        path = self.directory / INDEX
        if not path.is_file():
            return {}
        try:
            data = json.loads(path.read_text())
        except (OSError, ValueError) as exc:
            raise CacheError(f"{path}: unreadable cache index: {exc}") from None
        return data if isinstance(data, dict) else {}

    def _save_index(self, index: dict[str, dict[str, Any]]) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        tmp = self.directory / (INDEX + ".tmp")
        tmp.write_text(json.dumps(index, indent=2, sort_keys=True))
        tmp.replace(self.directory / INDEX)

    # -- fetching -------------------------------------------------------------------------------
    def fetch(self, url: str, filename: str, *, kind: str, force: bool = False,
              chain_header: str | None = None) -> Path:
        """GET ``url`` into ``filename`` unless a cached copy is still fresh (before its ``nextUpdate``)."""
        index = self._index()
        entry = index.get(url)
        now = self.clock()
        if entry and not force and (self.directory / entry["file"]).is_file():
            horizon = entry.get("next_update")
            if horizon is None or datetime.fromisoformat(horizon) > now:
                return self.directory / entry["file"]
        resp = self.transport(url, self.timeout)
        if resp.status != 200:
            raise CacheError(f"GET {url}: HTTP {resp.status}")
        if len(resp.body) > MAX_RESPONSE:
            raise CacheError(f"GET {url}: response larger than {MAX_RESPONSE} bytes")
        horizon_dt = freshness_horizon(resp.body, kind)
        path = self.directory / filename
        if kind in ("crl", "intel-json") and path.is_file():
            _refuse_rollback(path, resp.body, url)
        path.parent.mkdir(parents=True, exist_ok=True)
        _write_atomically(path, resp.body)  # a Steward reloading mid-fetch reads the old file or the new
        index[url] = {"file": filename, "kind": kind, "fetched": now.isoformat(),
                      "next_update": horizon_dt.isoformat() if horizon_dt else None}
        if chain_header:
            chain = resp.headers.get(chain_header.lower())
            if chain:
                pem = urllib.parse.unquote(chain).encode()
                chain_name = filename + ".issuer-chain.pem"
                (self.directory / chain_name).write_bytes(pem)
                index[url + "#issuer-chain"] = {"file": chain_name, "kind": "chain", "fetched": now.isoformat(),
                                                "next_update": None}
        self._save_index(index)
        return path

    def fetch_snp(self, report: Any, *, product: str | None = None, force: bool = False) -> list[Path]:
        """VCEK (for the report's chip and reported TCB), the product's cert_chain and ARK CRL from KDS.

        VLEK-signed reports cannot be fetched (AMD issues VLEKs to cloud providers); only their chain and
        CRL are fetched then.
        """
        from enarx.attestation.snp.abi import SnpReport, parse_report

        report = report if isinstance(report, SnpReport) else parse_report(report)
        product = product or report.product
        if product is None:
            raise CacheError("report v2 carries no CPUID: name the product (Milan, Genoa or Turin)")
        kind = "vlek" if report.signing_key == "vlek" else "vcek"
        base = f"{self.kds_url}/{kind}/v1/{product}"
        paths = [
            self.fetch(f"{base}/cert_chain", f"amd/{product}/{kind}_cert_chain.pem", kind="chain", force=force),
            self.fetch(f"{base}/crl", f"amd/{product}/{kind}.crl.der", kind="crl", force=force),
        ]
        if kind == "vcek":
            tcb = report.reported_tcb
            hwid = report.chip_id[:8] if product == "Turin" else report.chip_id
            if not any(hwid):
                raise CacheError("the report masks its chip id: a VCEK cannot be looked up")
            query = {"blSPL": tcb.bootloader, "teeSPL": tcb.tee, "snpSPL": tcb.snp, "ucodeSPL": tcb.microcode}
            if tcb.fmc is not None:
                query = {"fmcSPL": tcb.fmc, **query}
            url = f"{base}/{hwid.hex()}?{urllib.parse.urlencode(query)}"
            name = f"amd/{product}/vcek-{hwid.hex()[:16]}-{report.reported_tcb_raw:016x}.der"
            paths.insert(0, self.fetch(url, name, kind="cert", force=force))
        return paths

    def fetch_intel(self, fmspc: bytes | str, *, tee: str = "sgx", force: bool = False) -> list[Path]:
        """TCB info for ``fmspc``, QE identity, PCK CRLs (platform, processor) and the root CA CRL from PCS."""
        fmspc_hex = fmspc.hex() if isinstance(fmspc, bytes) else fmspc.lower()
        api = f"{self.pcs_url}/{'tdx' if tee == 'tdx' else 'sgx'}/certification/v4"
        sgx_api = f"{self.pcs_url}/sgx/certification/v4"
        return [
            self.fetch(f"{api}/tcb?fmspc={fmspc_hex}", f"intel/{tee}-tcbinfo-{fmspc_hex}.json", kind="intel-json",
                       force=force, chain_header="TCB-Info-Issuer-Chain"),
            self.fetch(f"{api}/qe/identity", f"intel/{tee}-qe-identity.json", kind="intel-json", force=force,
                       chain_header="SGX-Enclave-Identity-Issuer-Chain"),
            self.fetch(f"{sgx_api}/pckcrl?ca=platform&encoding=der", "intel/pck-platform.crl.der", kind="crl",
                       force=force, chain_header="SGX-PCK-CRL-Issuer-Chain"),
            self.fetch(f"{sgx_api}/pckcrl?ca=processor&encoding=der", "intel/pck-processor.crl.der", kind="crl",
                       force=force, chain_header="SGX-PCK-CRL-Issuer-Chain"),
        ]

    def refresh(self) -> list[Path]:
        """Re-fetch every item whose freshness horizon has passed; returns the files rewritten."""
        now = self.clock()
        out = []
        for url, entry in self._index().items():
            horizon = entry.get("next_update")
            if "#" in url or horizon is None or datetime.fromisoformat(horizon) > now:
                continue
            out.append(self.fetch(url, entry["file"], kind=entry.get("kind", "crl"), force=True))
        return out

    # -- bundles --------------------------------------------------------------------------------
    def export_bundle(self, bundle: str | Path) -> Path:
        """Write every cached file (and the index) to a ``.tar.gz`` with a SHA-256 manifest."""
        files = sorted(p for p in self.directory.rglob("*") if p.is_file() and not p.name.endswith(".tmp"))
        manifest = {p.relative_to(self.directory).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
                    for p in files}
        bundle = Path(bundle)
        with tarfile.open(bundle, "w:gz") as tar:
            data = json.dumps({"version": 1, "files": manifest}, indent=2, sort_keys=True).encode()
            info = tarfile.TarInfo(MANIFEST)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
            for path in files:
                tar.add(path, arcname=path.relative_to(self.directory).as_posix(), recursive=False)
        return bundle

    @classmethod
    def import_bundle(cls, bundle: str | Path, directory: str | Path, **kwargs: Any) -> CollateralCache:
        """Unpack ``bundle`` into ``directory`` after checking every file against the manifest."""
        directory = Path(directory)
        for name, data in read_bundle(bundle).items():
            target = directory / name
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(data)
        return cls(directory, **kwargs)


def read_bundle(bundle: str | Path) -> dict[str, bytes]:
    """Every file of a bundle (name → bytes), each checked against the manifest's SHA-256; paths outside
    the bundle and files not in the manifest are refused."""
    try:
        with tarfile.open(bundle, "r:gz") as tar:
            members: dict[str, tarfile.TarInfo] = {}
            for member in tar:  # lazily: a hostile bundle may hold millions of entries
                if len(members) >= MAX_BUNDLE_FILES:
                    raise CacheError(f"{bundle}: more than {MAX_BUNDLE_FILES} files")
                members[member.name] = member
            if sum(m.size for m in members.values() if m.isfile()) > MAX_BUNDLE_BYTES:
                raise CacheError(f"{bundle}: more than {MAX_BUNDLE_BYTES >> 20} MiB of files")
            if MANIFEST not in members:
                raise CacheError(f"{bundle}: no {MANIFEST}")
            manifest = json.loads(tar.extractfile(members[MANIFEST]).read())  # type: ignore[union-attr]
            files = manifest.get("files") if isinstance(manifest, dict) else None
            if not isinstance(files, dict):
                raise CacheError(f"{bundle}: malformed manifest")
            contents: dict[str, bytes] = {}
            for name, digest in files.items():
                rel = PurePosixPath(name)
                if rel.is_absolute() or ".." in rel.parts or not rel.parts:
                    raise CacheError(f"{bundle}: refusing path {name!r}")
                member = members.get(name)
                if member is None or not member.isfile():
                    raise CacheError(f"{bundle}: {name} listed in the manifest but missing")
                if member.size > MAX_RESPONSE * 2:
                    raise CacheError(f"{bundle}: {name} is too large for collateral")
                data = tar.extractfile(member).read()  # type: ignore[union-attr]
                if hashlib.sha256(data).hexdigest() != digest:
                    raise CacheError(f"{bundle}: {name} does not match its SHA-256 in the manifest")
                contents[name] = data
            extra = set(members) - set(files) - {MANIFEST}
            if extra:
                raise CacheError(f"{bundle}: {min(extra)} is not in the manifest")
    except (tarfile.TarError, OSError, ValueError, EOFError) as exc:
        raise CacheError(f"{bundle}: not a collateral bundle: {exc}") from None
    return contents


def _refuse_rollback(path: Path, body: bytes, url: str) -> None:
    """A CRL or Intel document older than the cached copy it would replace — a replayed answer or a stale
    mirror, still inside its validity window but predating a revocation — is refused."""
    from enarx.attestation.store import CollateralStore

    try:
        held = CollateralStore.load([path])
        fetched = CollateralStore.from_set(_collateral_of(body, url))
    except AttestationError:
        return  # the cached copy is unreadable (or the answer is, which freshness_horizon reported): replace it
    rollbacks = held.rollbacks(fetched)
    if rollbacks:
        raise CacheError(f"GET {url}: refusing to replace the cached copy with an older one ({rollbacks[0]}); "
                         "a replayed answer or a stale mirror")


def _collateral_of(body: bytes, source: str) -> CollateralSet:
    from enarx.attestation.collateral import CollateralError, add_bytes

    out = CollateralSet()
    if not add_bytes(out, body, source):
        raise CollateralError(f"{source}: not collateral")
    return out


def _write_atomically(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_bytes(data)
    tmp.replace(path)


def freshness_horizon(body: bytes, kind: str) -> datetime | None:
    """When a fetched item stops being current: CRL nextUpdate, Intel JSON nextUpdate, certificate notAfter."""
    try:
        if kind == "crl":
            return Crl.from_der(body).next_update
        if kind == "cert":
            return Cert.from_der(body).not_after
        if kind == "chain":
            certs = [Cert.from_der(der) for label, der in split_pem(body) if label == "CERTIFICATE"]
            return min((c.not_after for c in certs), default=None)
        if kind == "intel-json":
            doc = json.loads(body)
            inner = next((v for k, v in doc.items() if k in ("tcbInfo", "enclaveIdentity")), doc)
            text = inner.get("nextUpdate") if isinstance(inner, dict) else None
            if isinstance(text, str):
                return datetime.fromisoformat(text.replace("Z", "+00:00"))  # noqa: FURB162
            return None
    except (CertificateFormatError, ValueError, AttributeError) as exc:
        raise CacheError(f"fetched {kind} does not parse: {exc}") from None
    return None
