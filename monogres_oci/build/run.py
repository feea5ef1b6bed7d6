"""The build stage: fetch every source, compile each target once, package into an OCI layout,
and gate every extension image before it is tagged.

Order matters for the guarantees users rely on: all sources are fetched and verified before any
compile starts (a checksum mismatch builds nothing); Postgres builds come before the extensions
compiled against them, and an extension after those it requires; an extension that fails to
build, or whose image fails the gate, is reported with its log tail and does not stop the
others; the layout's tags are written last, only for what was built and passed the gate.
"""

from __future__ import annotations

import os
import tarfile
import time
from collections.abc import Callable, Generator, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import closing, contextmanager
from functools import cache
from pathlib import Path

from monogres_oci.attest.buildinfo import keep_beside, postgres_record
from monogres_oci.build.compile import (
    ExtensionBuildOutput,
    ExtensionInvocation,
    PostgresBuildOutput,
    compile_extension,
    compile_postgres,
    extension_invocation,
)
from monogres_oci.build.compile.from_registry import RegistrySource, take_postgres
from monogres_oci.build.compile.storage import CacheLimit
from monogres_oci.build.extension_stage import Compiled, ExtensionStage, StageContext
from monogres_oci.build.fetch import Fetcher
from monogres_oci.build.state import (
    BuildCache,
    BuildReport,
    BuildTimes,
    Outcome,
    Outcomes,
    TargetResult,
    error_summary,
)
from monogres_oci.catalog import Catalog, Source
from monogres_oci.errors import BuildError, MonogresError, UsageError
from monogres_oci.gate.cache import GateCache
from monogres_oci.gate.pool import GatePool
from monogres_oci.package.images import Packager
from monogres_oci.plan.targets import ExtensionTarget, Plan, PostgresTarget
from monogres_oci.progress import Progress, StepMeter


def source_date_epoch(tarball: Path, pinned: int | None = None) -> int:
    """The epoch of a source: the catalog's ``source_date_epoch`` when it gives one, else the
    newest modification time recorded in the tarball (stable and content-derived).

    ``SOURCE_DATE_EPOCH`` in the environment wins, as the reproducible-builds spec says.
    """
    if env := os.environ.get("SOURCE_DATE_EPOCH"):
        return int(env)
    if pinned is not None:
        return pinned
    return _newest_mtime(tarball)


@cache
def _newest_mtime(tarball: Path) -> int:
    # Cached: a Postgres tarball takes seconds to decompress, and several targets share it.
    newest = 0
    with tarfile.open(tarball) as tar:
        for member in tar:
            newest = max(newest, int(member.mtime))
    return newest


def fetch_all(plan: Plan, fetcher: Fetcher, progress: Callable[[str], None]) -> dict[str, Path]:
    """Fetch and verify every source of the plan; nothing is compiled before this succeeds."""
    sources: dict[str, Source] = {}
    for pg in plan.postgres:
        sources[pg.release.source.sha256] = pg.release.source
    for ext in plan.extensions:
        sources[ext.version.source.sha256] = ext.version.source
    paths = {}
    for sha, source in sorted(sources.items(), key=lambda kv: kv[1].file):
        paths[sha] = fetcher.fetch(source)
    progress(f"fetched and verified {len(paths)} source(s)")
    return paths


def run_build(
    catalog: Catalog,
    plan: Plan,
    *,
    fetcher: Fetcher,
    cache: BuildCache,
    packager: Packager,
    progress: Progress,
    rebuild: bool = False,
    sandbox_hostname: str = "",
    gate: bool = True,
    jobs: int = 1,
    reuse_gates: bool = True,
    registry: RegistrySource | None = None,
    cache_limit: CacheLimit | None = None,
) -> BuildReport:
    """Fetch, compile, package and gate the plan; return what happened to each target.

    ``rebuild`` compiles with BuildKit's cache off (with a fresh cache directory, everything is
    compiled from scratch: what reproducibility checks and benchmarks need) and gates every
    image again; otherwise, unless ``reuse_gates`` is False (``monogres-oci test``), a passing
    result of the very same gate (same images, same test configuration, same gate code) is
    reused.
    ``sandbox_hostname`` is passed to every compile (see ``compile_postgres``). ``gate`` False
    packages extension images without proving them (they then carry no test result, and
    ``publish`` refuses them unless told otherwise). ``jobs`` extension compiles of one Postgres
    build run at once (BuildKit runs them side by side), and as many gates; packaging, and
    applying what each gate found, stay in plan order (see ``extension_stage``).
    How each target ended is recorded in the cache directory's outcomes (``status`` reads them).
    ``registry``: a Postgres build the cache lacks is taken from there when it is published from
    the same inputs and signed with its key, instead of compiled (not with ``rebuild``).
    ``cache_limit``: BuildKit's cache is pruned down to it between targets.
    """
    report = BuildReport()
    outcomes = Outcomes(cache.root.parent)
    times = BuildTimes(cache.root.parent)
    gates = GateCache(cache.root.parent)
    progress.stage(f"fetching sources for {len(plan.postgres)} Postgres and "
                   f"{len(plan.extensions)} extension target(s)")
    paths = fetch_all(plan, fetcher, progress.stage)
    catalog_dir = Path(catalog.path).parent
    for item in plan.disabled:
        progress.stage(f"skipping {item.target.name}: disabled in the catalog ({item.reason})")
    for pg in plan.postgres:
        pg_epoch = source_date_epoch(paths[pg.release.source.sha256],
                                     pg.release.source_date_epoch)
        try:
            pg_out, cached = _compile_postgres(pg, paths, cache, progress, pg_epoch, rebuild,
                                               sandbox_hostname, catalog_dir,
                                               None if rebuild else registry, times)
        except MonogresError as exc:
            outcomes.record(pg.key, Outcome(pg.name, "compile", ok=False, summary=error_summary(exc)))
            report.results.append(TargetResult(pg.name, "postgres", ok=False, error=str(exc)))
            for ext in plan.extensions_of(pg):
                report.results.append(TargetResult(ext.name, "extension", ok=False,
                                                   error=f"not built: {pg.name} failed"))
            progress.stage(f"FAILED {pg.name}")
            continue
        outcomes.record(pg.key, Outcome(pg.name, "compile", ok=True))
        pg_record = keep_beside(postgres_record(pg, pg_out, pg_epoch), pg_out.meta_dir)
        runnable = packager.add_postgres(pg, pg_out, pg_record)
        report.results.append(TargetResult(pg.name, "postgres", ok=True, cached=cached))
        targets = requires_first(plan.extensions_of(pg))

        def compile_one(ext: ExtensionTarget, needed: Sequence[Compiled],
                        pg_out: PostgresBuildOutput = pg_out, pg_epoch: int = pg_epoch,
                        ) -> Compiled:
            epoch = max(pg_epoch, source_date_epoch(paths[ext.version.source.sha256],
                                                     ext.version.source_date_epoch))
            out, invocation, cached = _compile_extension(
                ext, pg_out, [c.out for c in needed], paths, cache, progress, epoch, rebuild,
                sandbox_hostname, catalog_dir, times)
            return Compiled(out, invocation, cached, epoch)

        ctx = StageContext(report, outcomes, packager, progress, pg_out, pg_record, runnable,
                           gate, gates if reuse_gates and not rebuild else None)
        # On an interruption the gates stop first (their containers removed), then the compiles
        # under way are waited for: closing the generator waits for its threads.
        with (closing(_compiled_in_order(targets, compile_one, jobs)) as compiled_in_order,
              GatePool(jobs if gate else 1) as pool):
            stage = ExtensionStage(ctx, pool)
            for ext, compiled in compiled_in_order:
                stage.take(ext, compiled, cache.dir(ext.key) / "suite")
                if cache_limit:
                    cache_limit.enforce(progress.stage)
            stage.finish()
        if cache_limit:
            cache_limit.enforce(progress.stage, now=True)
    report.refs = packager.finish()
    return report


def _compiled_in_order(targets: Sequence[ExtensionTarget],
                       compile_one: Callable[[ExtensionTarget, Sequence[Compiled]], Compiled],
                       jobs: int,
                       ) -> Generator[tuple[ExtensionTarget, Compiled | BuildError], None, None]:
    """Each target with its compile output (or the error), in the targets' order, which puts
    the targets a target is built against (``needs``) before it.

    With ``jobs`` > 1 up to that many compiles run in threads (each is a BuildKit build, so the
    threads only wait) while the caller packages and gates the ones before; with 1, each compile
    waits for the caller to finish the previous target, as a plain loop would. A compile that
    needs another waits for it: the pool starts compiles in order, so that one is already
    running or done, and no thread waits on one that cannot start.
    """
    ended: dict[str, Future[Compiled | BuildError] | Compiled | BuildError] = {}

    def attempt(ext: ExtensionTarget) -> Compiled | BuildError:
        needed = []
        for need in ext.needs:
            got = ended.get(need.key)
            if isinstance(got, Future):
                got = got.result()
            if not isinstance(got, Compiled):
                return BuildError(f"not built: {need.name}, which it is built against "
                                  "(build.requires), " + ("failed" if got else "is not in this build"))
            needed.append(got)
        try:
            return compile_one(ext, needed)
        except BuildError as exc:
            return exc

    if jobs <= 1:
        for ext in targets:
            result = ended[ext.key] = attempt(ext)
            yield ext, result
        return
    with ThreadPoolExecutor(max_workers=jobs, thread_name_prefix="compile") as pool:
        futures = []
        for ext in targets:
            futures.append(pool.submit(attempt, ext))
            ended[ext.key] = futures[-1]
        try:
            for ext, future in zip(targets, futures, strict=True):
                yield ext, future.result()
        finally:
            for future in futures:
                future.cancel()  # interrupted: start no new compile; running ones finish


def requires_first(targets: Sequence[ExtensionTarget]) -> list[ExtensionTarget]:
    """The targets in their order, but each after the extensions it requires (build.requires
    and runtime.requires)."""
    by_name: dict[str, list[ExtensionTarget]] = {}
    for t in targets:
        by_name.setdefault(t.extension.name, []).append(t)
    done: set[str] = set()
    ordered: list[ExtensionTarget] = []

    def visit(name: str, chain: tuple[str, ...]) -> None:
        if name in done or name not in by_name:
            return
        if name in chain:
            raise UsageError(f"extensions require each other in a cycle: {' -> '.join((*chain, name))}")
        recipe = by_name[name][0].extension
        for required in (*recipe.build.requires, *recipe.runtime.requires):
            visit(required, (*chain, name))
        done.add(name)
        ordered.extend(by_name[name])

    for t in targets:
        visit(t.extension.name, ())
    return ordered


@contextmanager
def _metered(times: BuildTimes, progress: Progress, name: str,
             cached: bool) -> Iterator[StepMeter]:
    """The progress of one compile, estimated from the last one of the same target; what this
    one took is kept for the next (unless nothing was compiled)."""
    meter = StepMeter(progress, name, last=times.get(name))
    started = time.monotonic()
    try:
        yield meter
    finally:
        meter.close()
    if not cached:
        times.record(name, time.monotonic() - started, meter.lines)


def _compile_postgres(pg: PostgresTarget, paths: dict[str, Path], cache: BuildCache,
                      progress: Progress, epoch: int, rebuild: bool,
                      sandbox_hostname: str, patch_dir: Path,
                      registry: RegistrySource | None,
                      times: BuildTimes) -> tuple[PostgresBuildOutput, bool]:
    cached = cache.has(pg.key)
    if not cached and registry is not None:
        taken = take_postgres(registry, pg, cache.dir(pg.key), progress.stage)
        if taken is not None:
            return taken, True
        progress.stage(f"{pg.name}: not in the registry from the same inputs")
    progress.stage(f"{'cached' if cached else 'compiling'} {pg.name} (input sha256:{pg.key[:12]})")
    with _metered(times, progress, pg.name, cached) as meter:
        out = compile_postgres(
            base_image=pg.base_image,
            pg_version=pg.release.version,
            pg_major=pg.release.major,
            source_tarball=paths[pg.release.source.sha256],
            meson_options=pg.meson_options,
            build_packages=pg.build_packages,
            platform=pg.platform,
            source_date_epoch=epoch,
            out_dir=cache.dir(pg.key),
            progress=meter,
            cache_key=pg.key,
            no_cache=rebuild,
            sandbox_hostname=sandbox_hostname,
            patches=[patch_dir / p.file for p in pg.patches],
            compile_on=pg.compile_on,
        )
    return out, cached


def _compile_extension(ext: ExtensionTarget, pg_out: PostgresBuildOutput,
                       needed: Sequence[ExtensionBuildOutput], paths: dict[str, Path],
                       cache: BuildCache, progress: Progress, epoch: int, rebuild: bool,
                       sandbox_hostname: str, catalog_dir: Path, times: BuildTimes,
                       ) -> tuple[ExtensionBuildOutput, ExtensionInvocation, bool]:
    cached = cache.has(ext.key)
    progress.stage(f"{'cached' if cached else 'compiling'} {ext.name} (input sha256:{ext.key[:12]})")
    pg = ext.postgres
    invocation = extension_invocation(
        base_image=pg.base_image,
        postgres=pg_out,
        built_against=[n.install_root for n in needed],
        pg_major=pg.release.major,
        source_tarball=paths[ext.version.source.sha256],
        patches=[catalog_dir / p.file for p in ext.extension.build.patches],
        build_packages=pg.build_packages,
        recipe=ext.extension.build,
        platform=pg.platform,
        source_date_epoch=epoch,
        compile_on=ext.compile_on,
    )
    with _metered(times, progress, ext.name, cached) as meter:
        out = compile_extension(
            invocation,
            out_dir=cache.dir(ext.key),
            progress=meter,
            cache_key=ext.key,
            no_cache=rebuild,
            sandbox_hostname=sandbox_hostname,
        )
    return out, invocation, cached
