"""The Enarx.toml written by ``enarx config init`` (Enarx's template, plus our extensions, commented out)."""

TEMPLATE = """\
## Configuration for a WebAssembly application running in an Enarx Keep

## Arguments passed to the workload (argv[0] is always "main.wasm")
# args = [
#      "--argument1",
#      "--argument2=foo"
# ]

## Steward: the attestation server that certifies this keep
# steward = "https://attest.example.com"

## Environment variables (FD_COUNT and FD_NAMES are set before these)
# [env]
# VAR1 = "var1"
# VAR2 = "var2"

## Pre-opened file descriptors, in order: fd 0, 1, 2, ...
[[files]]
kind = "stdin"

[[files]]
kind = "stdout"

[[files]]
kind = "stderr"

## A listening socket, bound before the workload starts; accept on it
# [[files]]
# kind = "listen"
# name = "listen"
# prot = "tls" # or "tcp"
# port = 12345

## An outgoing connection, opened before the workload starts
# [[files]]
# kind = "connect"
# name = "stream"
# host = "localhost"
# prot = "tls" # or "tcp"
# port = 23456

## Extension: a host directory visible to the workload (the host can see and change it)
# [[files]]
# kind = "dir"
# path = "./data"
# name = "data"
# writable = false

## Extension: the package's secrets as files in a read-only directory (before listen/connect entries)
# [[files]]
# kind = "secrets"
# name = "/run/secrets"

## Extension: a secret of the (encrypted) package: the file secrets/db-password, also as $DB_PASSWORD
# [[secrets]]
# name = "db-password"
# env = "DB_PASSWORD"

## Extension: resource limits
# [limits]
# memory = "256MiB"
# timeout = 60
"""
