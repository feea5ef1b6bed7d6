"""Each compiled extension of one Postgres build: packaged, gated, and its end recorded.

Packaging and recording happen in this thread, in plan order; gates run in a ``GatePool`` (up
to ``--jobs`` at once, a gate after those of the extensions it requires). What a gate found is
applied in plan order too (its result attached, the image withdrawn if it failed), so the layout
and the report do not depend on which gate finished first.
"""

from __future__ import annotations

import tempfile
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass
from functools import partial
from pathlib import Path

from monogres_oci.attest.buildinfo import (
    BuildRecord,
    extension_record,
    keep_beside,
    read_bundled,
)
from monogres_oci.build.compile import ExtensionBuildOutput, ExtensionInvocation, PostgresBuildOutput
from monogres_oci.build.state import (
    BuildReport,
    Outcome,
    Outcomes,
    Stage,
    TargetResult,
    error_summary,
)
from monogres_oci.catalog.model import required_closure
from monogres_oci.errors import BuildError, MonogresError
from monogres_oci.gate import GateResult, GateSubject, attach_result, gate_extension
from monogres_oci.gate.cache import GateCache, gate_key
from monogres_oci.gate.pool import GatePool
from monogres_oci.oci.model import Descriptor, Platform
from monogres_oci.package.image_volume import stage_extension
from monogres_oci.package.images import Packager
from monogres_oci.plan.targets import ExtensionTarget
from monogres_oci.progress import Progress


@dataclass(frozen=True)
class Compiled:
    """A finished extension compile."""

    out: ExtensionBuildOutput
    invocation: ExtensionInvocation
    cached: bool
    epoch: int


def package_extension(ext: ExtensionTarget, out: ExtensionBuildOutput, pg_out: PostgresBuildOutput,
                      epoch: int, pg_record: BuildRecord, packager: Packager) -> Descriptor:
    """Lay the build output out for the image (checked and relocated), record it, package it
    (or take what was packaged before from the same inputs)."""
    if (packaged := packager.packaged_extension(ext, epoch)) is not None:
        return packaged
    bundled = read_bundled(out.meta_dir, out.system_licenses_dir)
    with tempfile.TemporaryDirectory(prefix="monogres-stage-") as scratch:
        staged = stage_extension(ext.extension, out, major=ext.postgres.release.major,
                                 postgres_tree=pg_out.prefix, bundled=bundled,
                                 scratch=Path(scratch))
        record = keep_beside(extension_record(ext, out, epoch, pg_record, bundled=bundled,
                                              relocations=staged.relocated.rewrites,
                                              kept_paths=staged.kept), out.meta_dir)
        return packager.add_extension(ext, staged, record)


def gate_outcome(ext: ExtensionTarget, result: GateResult) -> Outcome:
    return Outcome(ext.name, "gate", ok=result.ok, summary=result.summary(),
                   tests_passed=len(result.passed_cases), tests_total=len(result.cases),
                   suite_skipped=result.skipped)


@dataclass(frozen=True)
class StageContext:
    """What every extension of one Postgres build shares on its way through this stage."""

    report: BuildReport
    outcomes: Outcomes
    packager: Packager
    progress: Progress
    pg_out: PostgresBuildOutput
    pg_record: BuildRecord
    runnable: Descriptor  # the runnable Postgres image the gates run in
    gate: bool  # False: packaged without proving (--no-gate)
    gates: GateCache | None  # passing results to reuse, or None to gate every image again


class ExtensionStage:
    """Takes compiled extensions in plan order; ``finish`` waits for the last gate."""

    def __init__(self, ctx: StageContext, pool: GatePool) -> None:
        self.ctx = ctx
        self.pool = pool
        self._packaged: dict[str, Descriptor] = {}
        self._requires: dict[str, tuple[str, ...]] = {}  # runtime.requires of each packaged
        self._gating: dict[str, Future[GateResult]] = {}
        # Ends to record in plan order, each once the future it waits on (if any) is done.
        self._ends: deque[tuple[Future[GateResult] | None, Callable[[], None]]] = deque()

    def take(self, ext: ExtensionTarget, compiled: Compiled | BuildError, log_dir: Path) -> None:
        ctx = self.ctx
        if isinstance(compiled, BuildError):
            self._end(None, partial(self._failed, ext, "compile", compiled))
            return
        try:
            image = package_extension(ext, compiled.out, ctx.pg_out, compiled.epoch,
                                      ctx.pg_record, ctx.packager)
        except BuildError as exc:
            self._end(None, partial(self._failed, ext, "package", exc))
            return
        self._packaged[ext.extension.name] = image
        self._requires[ext.extension.name] = ext.extension.runtime.requires
        if not ctx.gate:
            self._end(None, partial(self._untested, ext, compiled))
            return
        # After the gates of what it requires (their results decide whether it can run).
        after = [self._gating[r] for r in ext.extension.runtime.requires if r in self._gating]
        future = self.pool.submit(partial(self._run_gate, ext, image, compiled.invocation,
                                          log_dir), after=after,
                                  alone=bool(ext.extension.test.alone))
        self._gating[ext.extension.name] = future
        self._end(future, partial(self._gated, ext, image, compiled, future))

    def finish(self) -> None:
        while self._ends:
            future, end = self._ends.popleft()
            if future is not None:
                future.exception()  # waits; what it holds is for ``end`` to read
            end()

    def _end(self, future: Future[GateResult] | None, end: Callable[[], None]) -> None:
        self._ends.append((future, end))
        while self._ends and (self._ends[0][0] is None or self._ends[0][0].done()):
            self._ends.popleft()[1]()

    # --- in a gate's thread ----------------------------------------------------------------

    def _run_gate(self, ext: ExtensionTarget, image: Descriptor, invocation: ExtensionInvocation,
                  log_dir: Path) -> GateResult:
        """The gate's result for ``image`` (run now, or the very same gate's from the cache),
        once the extensions it requires have passed theirs."""
        ctx = self.ctx
        required = []
        direct = ext.extension.runtime.requires
        # What those require is mounted too (londiste -> pgq_node -> pgq): CREATE EXTENSION ...
        # CASCADE creates all of them. Each passed its gate before the one that requires it, so
        # only the direct ones' gates are asked.
        for name in required_closure(direct, self._requires):
            if name not in self._packaged:
                through = "" if name in direct else " (through what it requires)"
                raise BuildError(f"{ext.name} requires {name}{through}, which this build did "
                                 f"not package for the same Postgres; add --extension {name}")
            if name in direct:
                try:
                    passed = self._gating[name].result().ok
                except MonogresError:
                    passed = False
                if not passed:
                    raise BuildError(f"{ext.name} requires {name}, whose image did not pass "
                                     "its gate")
            required.append(self._packaged[name])
        platform = Platform(architecture=ext.postgres.arch, os="linux")
        key = gate_key(ext.extension, image.digest, [d.digest for d in required],
                       ctx.runnable.digest, str(platform))
        result = ctx.gates.get(key) if ctx.gates else None
        if result is not None:
            ctx.progress.stage(f"gate {ext.name}: these very images passed before; result "
                               f"reused (gate sha256:{key[:12]})")
            return result
        subject = GateSubject(ext.extension, ext.version.version, image, platform, invocation,
                              log_dir)
        result = gate_extension(ctx.packager.layout, subject, ctx.runnable, required,
                                ctx.progress.stage, self.pool.interrupted)
        if ctx.gates:
            ctx.gates.put(key, result)
        return result

    # --- ends, in plan order ---------------------------------------------------------------

    def _gated(self, ext: ExtensionTarget, image: Descriptor, compiled: Compiled,
               future: Future[GateResult]) -> None:
        ctx = self.ctx
        try:
            result = future.result()
        except MonogresError as exc:
            ctx.packager.withdraw(ext)
            ctx.outcomes.record(ext.key, Outcome(
                ext.name, "gate", ok=False, summary=f"the gate could not run: {error_summary(exc)}"))
            ctx.report.results.append(TargetResult(
                ext.name, "extension", ok=False, cached=compiled.cached,
                error=f"the gate could not run: {exc}"))
            ctx.progress.stage(f"FAILED {ext.name}: the gate could not run (not tagged)")
            return
        attach_result(ctx.packager.layout, image, result, ctx.runnable, ext.recipe_digest)
        ctx.progress.stage(f"gate {ext.name}: {result.summary()}")
        ctx.outcomes.record(ext.key, gate_outcome(ext, result))
        if not result.ok:
            ctx.packager.withdraw(ext)
            ctx.report.results.append(TargetResult(
                ext.name, "extension", ok=False, cached=compiled.cached, gate=result,
                error=f"gate {result.summary()} (not tagged, so not published)\n"
                      f"{result.output_tail}"))
            ctx.progress.stage(f"FAILED {ext.name}: gate {result.summary()}")
            return
        ctx.report.results.append(TargetResult(ext.name, "extension", ok=True,
                                               cached=compiled.cached, gate=result))

    def _untested(self, ext: ExtensionTarget, compiled: Compiled) -> None:
        self.ctx.outcomes.record(ext.key, Outcome(ext.name, "package", ok=True,
                                                  summary="packaged without the gate"))
        self.ctx.report.results.append(TargetResult(ext.name, "extension", ok=True,
                                                    cached=compiled.cached))

    def _failed(self, ext: ExtensionTarget, stage: Stage, exc: BuildError) -> None:
        self.ctx.outcomes.record(ext.key, Outcome(ext.name, stage, ok=False,
                                                  summary=error_summary(exc)))
        self.ctx.report.results.append(TargetResult(ext.name, "extension", ok=False,
                                                    error=str(exc)))
        self.ctx.progress.stage(f"FAILED {ext.name} (other targets go on)")
