"""Every parser of untrusted registry input rejects malformed bytes with a typed error — never another
exception — and accepts what it produces itself (hypothesis)."""

from __future__ import annotations

import json

from hypothesis import given, settings
from hypothesis import strategies as st

from enarx.drawbridge.content import (
    CT_DIRECTORY,
    ContentError,
    Entry,
    canonical,
    encode_directory,
    format_content_digest,
    parse_canonical,
    parse_content_digest,
    parse_directory,
)
from enarx.drawbridge.names import SlugError, is_tag, parse_slug, split_path
from enarx.drawbridge.repoconfig import RepoConfig, keep_checks

json_values = st.recursive(st.none() | st.booleans() | st.integers() | st.text(max_size=20),
                           lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner,
                                                                                       max_size=4), max_leaves=20)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=400))
def test_directory_parser_never_crashes(data: bytes) -> None:
    try:
        parse_directory(data)
    except ContentError:
        pass


@settings(max_examples=300, deadline=None)
@given(json_values)
def test_entry_and_directory_json_shapes(value: object) -> None:
    for parse in (lambda v: Entry.from_json(v), lambda v: parse_directory(canonical(v)), RepoConfig.parse):
        try:
            parse(value)
        except ContentError:
            pass


@settings(max_examples=300, deadline=None)
@given(st.lists(st.text(max_size=60), max_size=3))
def test_content_digest_header_parser(values: list[str]) -> None:
    try:
        parsed = parse_content_digest(values)
    except ContentError:
        return
    assert parse_content_digest([format_content_digest(parsed)]) == parsed


@settings(max_examples=200, deadline=None)
@given(st.dictionaries(st.from_regex(r"[A-Za-z0-9._:-]{1,12}", fullmatch=True).filter(lambda n: n not in (".", "..")),
                       st.binary(max_size=50), max_size=5))
def test_directories_round_trip(files: dict[str, bytes]) -> None:
    entries = {name: Entry.of(data, "application/octet-stream") for name, data in files.items()}
    body = encode_directory(entries)
    parsed = parse_directory(body)
    assert {n: e.encode() for n, e in parsed.items()} == {n: e.encode() for n, e in entries.items()}
    assert parse_canonical(body, "d") == json.loads(body)
    assert Entry.of(body, CT_DIRECTORY).is_directory


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=80))
def test_slug_and_path_parsers(text: str) -> None:
    for repo, tag in ((False, False), (True, False), (True, True)):
        try:
            slug = parse_slug(text, repo=repo, tag=tag)
        except SlugError:
            continue
        assert slug.host and (slug.tag is None or is_tag(slug.tag))
    parts = split_path(text)
    assert parts is None or all(".." != p and "/" not in p for p in parts)


@settings(max_examples=200, deadline=None)
@given(json_values)
def test_keep_claims_of_any_shape_are_refused_not_crashed(claims: object) -> None:
    rule = RepoConfig.parse({"public": False, "keeps": {"policy": {"tees": ["sev-snp"]}}}).keeps
    root = Entry.of(b"x", "application/wasm")
    failed = keep_checks(rule, claims if isinstance(claims, dict) else None, root)
    assert failed  # arbitrary claims never satisfy the rule (they cannot name this tag and be secure)
