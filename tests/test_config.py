"""Every Enarx.toml rule of enarx.md §2, plus our documented extensions, and fuzzing of the parser."""

from __future__ import annotations

import pytest
import tomli_w
from hypothesis import given, settings
from hypothesis import strategies as st

from enarx.config import (
    TEMPLATE,
    ConnectFile,
    DirFile,
    ListenFile,
    NullFile,
    StdioFile,
    default_config,
    load_config,
    parse_config,
    parse_size,
)
from enarx.errors import ConfigError


def parse(text: str):
    return parse_config(text, source="Enarx.toml")


def error(text: str) -> str:
    with pytest.raises(ConfigError) as info:
        parse(text)
    return str(info.value)


def test_empty_file_has_no_files_at_all():
    cfg = parse("")
    assert cfg.files == () and cfg.args == () and cfg.env == () and cfg.steward is None


def test_default_config_is_stdio():
    assert [f.kind for f in default_config().files] == ["stdin", "stdout", "stderr"]
    assert default_config().fd_names() == ["stdin", "stdout", "stderr"]


def test_template_is_valid_and_gives_stdio():
    cfg = parse(TEMPLATE)
    assert [f.kind for f in cfg.files] == ["stdin", "stdout", "stderr"]
    assert cfg.steward is None


def test_args_env_steward():
    cfg = parse('steward = "https://attest.example.com"\nargs = ["a", "b c"]\n[env]\nX = "1"\nY = "two"\n')
    assert cfg.steward == "https://attest.example.com"
    assert cfg.args == ("a", "b c")
    assert cfg.env == (("X", "1"), ("Y", "two"))


@pytest.mark.parametrize("kind", ["null", "stdin", "stdout", "stderr"])
def test_simple_kinds_default_name_is_kind(kind):
    (entry,) = parse(f'[[files]]\nkind = "{kind}"\n').files
    assert entry.name == kind and entry.kind == kind


def test_simple_kind_custom_name():
    (entry,) = parse('[[files]]\nkind = "stdout"\nname = "out"\n').files
    assert entry == StdioFile("stdout", "out")


@pytest.mark.parametrize("prot,port", [("tcp", 80), ("tls", 443)])
def test_listen_defaults(prot, port):
    (entry,) = parse(f'[[files]]\nkind = "listen"\nname = "ingest"\nprot = "{prot}"\n').files
    assert entry == ListenFile(name="ingest", prot=prot, addr="::", port=port)


@pytest.mark.parametrize("prot,port", [("tcp", 80), ("tls", 443)])
def test_connect_defaults_name_is_host(prot, port):
    (entry,) = parse(f'[[files]]\nkind = "connect"\nhost = "example.com"\nprot = "{prot}"\n').files
    assert entry == ConnectFile(host="example.com", prot=prot, name="example.com", port=port)


def test_listen_requires_name_and_prot():
    assert "missing field `name`" in error('[[files]]\nkind = "listen"\nprot = "tcp"\n')
    assert "missing field `prot`" in error('[[files]]\nkind = "listen"\nname = "x"\n')


def test_connect_requires_host_and_prot():
    assert "missing field `host`" in error('[[files]]\nkind = "connect"\nprot = "tcp"\n')
    assert "missing field `prot`" in error('[[files]]\nkind = "connect"\nhost = "h"\n')


def test_unknown_prot_and_kind_and_missing_kind():
    assert "prot" in error('[[files]]\nkind = "listen"\nname = "x"\nprot = "udp"\n')
    assert "unknown kind 'pipe'" in error('[[files]]\nkind = "pipe"\n')
    assert "missing field `kind`" in error('[[files]]\nname = "x"\n')


@pytest.mark.parametrize("entry", [
    'kind = "null"\nport = 1',
    'kind = "stdin"\nhost = "x"',
    'kind = "listen"\nname = "l"\nprot = "tcp"\nhost = "x"',  # codex's stray key is rejected
    'kind = "connect"\nhost = "h"\nprot = "tcp"\naddr = "::"',
    'kind = "dir"\npath = "/tmp"\nport = 3',
])
def test_unknown_fields_rejected_per_variant(entry):
    message = error(f"[[files]]\n{entry}\n")
    assert "unknown field" in message and "files[0]" in message and "Enarx.toml" in message


def test_name_must_not_contain_colon():
    assert "file name must not contain ':'" in error('[[files]]\nkind = "stdin"\nname = "a:b"\n')
    assert "must not contain ':'" in error('[[files]]\nkind = "connect"\nhost = "::1"\nprot = "tcp"\n')


def test_connect_ipv6_host_with_explicit_name_is_fine():
    (entry,) = parse('[[files]]\nkind = "connect"\nhost = "::1"\nprot = "tcp"\nname = "v6"\n').files
    assert entry.host == "::1" and entry.name == "v6"


@pytest.mark.parametrize("port", ["-1", "65536", '"80"', "true", "1.5"])
def test_bad_ports(port):
    assert ".port" in error(f'[[files]]\nkind = "listen"\nname = "l"\nprot = "tcp"\nport = {port}\n')


def test_port_zero_allowed_for_ephemeral_binding():
    (entry,) = parse('[[files]]\nkind = "listen"\nname = "l"\nprot = "tcp"\nport = 0\n').files
    assert entry.port == 0


def test_files_in_array_order():
    cfg = parse('[[files]]\nkind = "stdin"\n[[files]]\nkind = "null"\nname = "n"\n'
                '[[files]]\nkind = "stderr"\n[[files]]\nkind = "listen"\nname = "ingest"\nprot = "tcp"\n')
    assert cfg.fd_names() == ["stdin", "n", "stderr", "ingest"]
    assert isinstance(cfg.files[1], NullFile)


def test_unknown_top_level_keys_ignored_with_warning(caplog):
    cfg = parse('mystery = 1\nargs = ["x"]\n')
    assert cfg.args == ("x",)
    assert "mystery" in caplog.text


@pytest.mark.parametrize("text,where", [
    ('args = "x"', "args"),
    ("args = [1]", "args"),
    ('env = ["x"]', "env"),
    ("[env]\nX = 1", "env.X"),
    ("steward = 3", "steward"),
    ('steward = "ftp://x"', "steward"),
    ('files = {kind = "stdin"}', "files"),
    ("files = [1]", "files[0]"),
])
def test_type_errors_name_the_key(text, where):
    message = error(text)
    assert message.startswith("Enarx.toml: ") and where in message


def test_invalid_toml_is_a_config_error():
    assert "not valid TOML" in error("[[files]\nkind=")


def test_dir_extension(tmp_path):
    cfg = parse_config(f'[[files]]\nkind = "dir"\npath = "{tmp_path}/data/"\n', source="E.toml")
    assert cfg.files == (DirFile(path=f"{tmp_path}/data", name="data", writable=False),)
    cfg = parse('[[files]]\nkind = "dir"\npath = "/srv"\nname = "s"\nwritable = true\n')
    assert cfg.files[0] == DirFile(path="/srv", name="s", writable=True)
    assert "missing field `path`" in error('[[files]]\nkind = "dir"\n')
    assert "writable" in error('[[files]]\nkind = "dir"\npath = "/x"\nwritable = "yes"\n')


def test_relative_dir_resolves_against_config_file(tmp_path):
    (tmp_path / "Enarx.toml").write_text('[[files]]\nkind = "dir"\npath = "data"\n')
    cfg = load_config(tmp_path / "Enarx.toml")
    assert cfg.files[0].path == str(tmp_path / "data")


def test_limits_extension():
    cfg = parse('[limits]\nmemory = "64MiB"\ntimeout = 2.5\n')
    assert cfg.limits.memory == 64 << 20 and cfg.limits.timeout == 2.5
    assert parse("[limits]\nmemory = 4096\n").limits.memory == 4096
    assert "limits.memory" in error('[limits]\nmemory = "lots"\n')
    assert "limits.timeout" in error("[limits]\ntimeout = -1\n")
    assert "limits" in error("[limits]\ncpu = 1\n")


@pytest.mark.parametrize("text,value", [("1024", 1024), ("1KiB", 1024), ("64MiB", 64 << 20), ("1M", 1 << 20),
                                        ("2GB", 2 * 10**9), ("1.5GiB", 3 << 29), (65536, 65536)])
def test_parse_size(text, value):
    assert parse_size(text) == value


def test_tls_only_fields():
    assert "client_ca" in error('[[files]]\nkind = "listen"\nname = "l"\nprot = "tcp"\nclient_ca = "ca.pem"\n')
    assert ".ca" in error('[[files]]\nkind = "connect"\nhost = "h"\nprot = "tcp"\nca = "ca.pem"\n')


def test_load_config_errors(tmp_path):
    with pytest.raises(ConfigError, match="no such file"):
        load_config(tmp_path / "missing.toml")
    (tmp_path / "bin.toml").write_bytes(b"\xff\xfe")
    with pytest.raises(ConfigError, match="not UTF-8"):
        load_config(tmp_path / "bin.toml")


# -- property-based fuzzing: the parser only ever returns a Config or raises ConfigError -----------

_scalars = st.one_of(st.text(max_size=8), st.integers(-(2**63), 2**63 - 1), st.booleans(),
                     st.floats(allow_nan=False), st.sampled_from(["tcp", "tls", "stdin", "listen", "connect",
                                                                  "dir", "null", "::", "localhost"]))
_keys = st.sampled_from(["kind", "name", "prot", "port", "addr", "host", "path", "writable", "ca",
                         "client_ca", "x"])
_entries = st.dictionaries(_keys, _scalars, max_size=6)
_docs = st.fixed_dictionaries({}, optional={
    "args": st.one_of(st.lists(st.text(max_size=5), max_size=3), _scalars),
    "env": st.one_of(st.dictionaries(st.text(min_size=1, max_size=5), _scalars, max_size=3), _scalars),
    "steward": _scalars,
    "files": st.one_of(st.lists(_entries, max_size=5), _scalars),
    "limits": st.dictionaries(st.sampled_from(["memory", "timeout", "z"]), _scalars, max_size=2),
})


@settings(max_examples=300, deadline=None)
@given(_docs)
def test_fuzz_structured_documents(doc):
    try:
        text = tomli_w.dumps(doc)
    except (TypeError, ValueError):
        return
    try:
        cfg = parse(text)
    except ConfigError as exc:
        assert str(exc).startswith("Enarx.toml")
        return
    assert all(":" not in name for name in cfg.fd_names())


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=200))
def test_fuzz_arbitrary_text(text):
    try:
        parse(text)
    except ConfigError:
        pass


_path_parts = st.sampled_from(["..", ".", "", "data", "a b", "/", "//", "~", "..data", "x/..", "\\..", "/etc"])


@settings(max_examples=400, deadline=None)
@given(st.lists(_path_parts, min_size=1, max_size=6).map("/".join), st.sampled_from(["dir", "ca"]))
def test_fuzz_package_paths_never_leave_the_package(path, key):
    """Whatever a package's Enarx.toml says, a path it is given resolves inside the package, or it is refused."""
    import os

    root = "/pkg/root"
    if key == "dir":
        text = tomli_w.dumps({"files": [{"kind": "dir", "path": path, "name": "d"}]})
    else:
        text = tomli_w.dumps({"files": [{"kind": "connect", "host": "h", "prot": "tls", "ca": path}]})
    try:
        cfg = parse_config(text, source="E.toml", base_dir=root, package_root=root)
    except ConfigError as exc:
        assert str(exc).startswith("E.toml: files[0]")
        return
    resolved = cfg.files[0].path if key == "dir" else cfg.files[0].ca
    assert os.path.commonpath([root, os.path.normpath(resolved)]) == root, resolved
