"""Registered resources: a package's content key, the keep policy it is released under, and its owner.

Resources are write-once (a second registration of a path is refused: 409) and a repository belongs to
the publisher who registered in it first (others: 403). With ``--store DIR`` each resource is one 0600
JSON file named by the SHA-256 of its path, written atomically (a temporary file renamed into place);
without it, resources live in memory and vanish with the process. The content key is stored as it is:
the broker is a trusted service run by the owner — its store deserves the protection of a key store.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import threading
from dataclasses import asdict, dataclass
from pathlib import Path


@dataclass(frozen=True)
class Resource:
    path: str  # "<repository>/<type>/<tag>"
    key: bytes
    policy: str
    owner: str
    package_id: str
    manifest_digest: str

    @property
    def repository(self) -> str:
        return self.path.split("/", 1)[0]

    def __repr__(self) -> str:  # never show the key
        return f"Resource({self.path!r}, owner={self.owner!r}, package_id={self.package_id})"


class StoreConflict(Exception):
    """``reason``: ``exists`` (409) or ``not-owner`` (403)."""

    def __init__(self, message: str, reason: str):
        super().__init__(message)
        self.reason = reason


def _name(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


class ResourceStore:
    def __init__(self, directory: str | os.PathLike[str] | None = None):
        self.directory = Path(directory) if directory is not None else None
        self._memory: dict[str, Resource] = {}
        self._owners: dict[str, str] = {}
        self._lock = threading.Lock()
        if self.directory is not None:
            for sub in ("resources", "owners"):
                (self.directory / sub).mkdir(parents=True, exist_ok=True, mode=0o700)
            os.chmod(self.directory, 0o700)

    def get(self, path: str) -> Resource | None:
        if self.directory is None:
            return self._memory.get(path)
        try:
            doc = json.loads((self.directory / "resources" / f"{_name(path)}.json").read_text())
        except FileNotFoundError:
            return None
        return Resource(**{**doc, "key": base64.b64decode(doc["key"])})

    def owner(self, repository: str) -> str | None:
        if self.directory is None:
            return self._owners.get(repository)
        try:
            return json.loads((self.directory / "owners" / f"{_name(repository)}.json").read_text())["owner"]
        except FileNotFoundError:
            return None

    def put(self, resource: Resource) -> None:
        with self._lock:
            owner = self.owner(resource.repository)
            if owner is not None and owner != resource.owner:
                raise StoreConflict(f"repository {resource.repository!r} belongs to another publisher", "not-owner")
            if self.get(resource.path) is not None:
                raise StoreConflict(f"resource {resource.path!r} is already registered (resources are "
                                    "write-once: publish under a new tag)", "exists")
            if self.directory is None:
                self._owners.setdefault(resource.repository, resource.owner)
                self._memory[resource.path] = resource
                return
            if owner is None:
                self._write(self.directory / "owners" / f"{_name(resource.repository)}.json",
                            {"repository": resource.repository, "owner": resource.owner})
            doc = {**asdict(resource), "key": base64.b64encode(resource.key).decode()}
            self._write(self.directory / "resources" / f"{_name(resource.path)}.json", doc)

    @staticmethod
    def _write(path: Path, doc: dict) -> None:
        tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
        with os.fdopen(fd, "w") as fh:
            json.dump(doc, fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.rename(tmp, path)
