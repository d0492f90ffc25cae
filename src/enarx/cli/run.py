"""``enarx run``: run a WebAssembly module or package in a keep."""

from __future__ import annotations

import click

from enarx.cli.runner import execute


@click.command(context_settings={"ignore_unknown_options": True, "allow_interspersed_args": False})
@click.option("--backend", envvar="ENARX_BACKEND", help="Keep backend: nil, kvm, sev, sgx, tdx (default: best).")
@click.option("--wasmcfgfile", envvar="ENARX_WASMCFGFILE", type=click.Path(dir_okay=False),
              help="Enarx.toml to use (default: the package's own, else plain WASI).")
@click.option("--env", "env", multiple=True, metavar="KEY=VALUE", help="Set an environment variable.")
@click.option("--dir", "dirs", multiple=True, metavar="HOST[::GUEST]",
              help="Preopen a host directory read-write (the host can see it).")
@click.option("--memory-limit", metavar="SIZE", help='Linear memory limit, e.g. 67108864 or "64MiB".')
@click.option("--timeout", metavar="SECONDS", help="Stop the workload after this much wall time.")
@click.option("--no-cache", is_flag=True, help="Do not use the compiled-module cache.")
@click.option("--simulate-tee", type=click.Choice(["sev-snp", "tdx", "sgx"]),
              help="Attest with SIMULATED evidence (testing without hardware; a Steward must opt in).")
@click.option("--simulator-pki", metavar="DIR", help="The simulator's test PKI (default: in the cache dir).")
@click.option("--ca-bundle", metavar="PEM",
              help="CA certificates the keep trusts for an https Steward under a private CA (default: "
                   "$ENARX_CA_BUNDLE), added to the system roots.")
@click.argument("module", type=click.Path())
@click.argument("args", nargs=-1, type=click.UNPROCESSED)
@click.pass_context
def run(ctx: click.Context, backend: str | None, wasmcfgfile: str | None, env: tuple[str, ...],
        dirs: tuple[str, ...], memory_limit: str | None, timeout: str | None, no_cache: bool,
        simulate_tee: str | None, simulator_pki: str | None, ca_bundle: str | None, module: str, args: tuple[str, ...]) -> None:
    """Run MODULE (a .wasm file or a package directory) in a keep; ARGS go to the workload.

    The workload's exit status becomes enarx's exit status. A trap exits 134, a timeout 124.
    """
    if module.startswith("-") and module != "-":
        raise click.UsageError(f"No such option: {module}", ctx=ctx)
    log_filter = (ctx.obj or {}).get("log_filter")
    execute(backend=backend, wasmcfgfile=wasmcfgfile, env=env, dirs=dirs, memory_limit=memory_limit,
            timeout=timeout, no_cache=no_cache, module=module, args=list(args), log_filter=log_filter,
            simulate_tee=simulate_tee, simulator_pki=simulator_pki, ca_bundle=ca_bundle)
