"""Drawbridge: the package registry (server, storage, auth) and its client.

Compatible with Enarx's Drawbridge API (users → repositories → semver tags → content-addressed trees,
``/api/v<semver>/`` routes, ``Content-Digest`` with the four SHA-2 digests, canonical JSON directories),
and stricter: objects are write-once and checked against their digests when written and when read, a
tag is served only once its whole tree is stored, and keeps read private repositories only by rule.
"""

API_VERSION = "0.1.0"  # what our client speaks (Enarx's client sends 0.1.0 too)
SERVER_API_VERSION = "0.4.2"  # what the server answers: requests for a newer API are refused with 501
