"""A standalone folder that reproduces a recorded failure by hand, without threshold-probe.

The folder holds exactly what the pipeline ships for the probe (its job files and shared files,
built by the pipeline itself, as for a real dispatch), a ``run.sh`` that runs them the way the
cluster did (the same command, the same environment the runner reads, and the limits a shell
can set: ``ulimit -v`` for memory and ``timeout`` for time) and a README with the cluster,
versions, command and the failure to expect. The far side's runner is stdlib only (plus
cloudpickle for pickling pipelines), so the folder runs on any machine with that Python.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import shlex
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from threshold_probe import __version__
from threshold_probe.config import ProbeConfig
from threshold_probe.errors import UserError
from threshold_probe.ladder.workload import Workload
from threshold_probe.models import PYTHON, Limits, ProbeRecord, shared_ref
from threshold_probe.pipelines import make_pipeline
from threshold_probe.pipelines.base import ClientSideError, ShippingPipeline
from threshold_probe.shrink import KIND, ShrinkResult, _workload_from, latest_shrink, target_from_run
from threshold_probe.store import Store, path_error

SCRIPT_NAME = "run.sh"
README_NAME = "README.md"
SHARED_DIR = "shared"


@dataclass
class ReproFolder:
    """What `probe repro` wrote."""

    folder: str
    files: list[str]
    command: str
    cluster: str
    pipeline: str
    signature: str | None
    shrunk: bool
    limits: dict[str, Any]

    def as_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def _far_python(config: ProbeConfig, cluster: str) -> str:
    try:
        cfg = config.cluster(cluster)
    except UserError:
        return "python3"
    python = getattr(cfg, "python", None)
    return str(python) if python else "python3"


def _record(store: Store, run_id: str, level: int | None, signature: str | None) -> ProbeRecord | None:
    for r in store.probes(run_id):
        at = level is None or r.level == level
        if r.verdict.status == "fail" and at and (signature is None or r.verdict.signature == signature):
            return r
    return None


def _script(argv: list[str], env: dict[str, str], limits: Limits, python: str, cluster: str) -> str:
    lines = [
        "#!/bin/sh",
        f"# Runs the probe as cluster {cluster} ran it: the same command, environment and limits",
        "# (those a shell can set). PYTHON is the far side's interpreter; give another with PYTHON=...",
        'cd "$(dirname "$0")" || exit 2',
        f'PYTHON="${{PYTHON:-{python}}}"',
    ]
    for key, value in sorted(env.items()):
        lines.append(f"export {key}={shlex.quote(value)}")
    if limits.memory_bytes:
        kib = limits.memory_bytes // 1024
        lines.append(f"ulimit -v {kib} || echo 'run.sh: cannot set the memory limit (ulimit -v {kib})' >&2")
    cmd = " ".join('"$PYTHON"' if a == "$PYTHON" else shlex.quote(a) for a in argv)
    if limits.time_s:
        seconds = int(limits.time_s) if float(limits.time_s).is_integer() else limits.time_s
        lines += [
            "if command -v timeout >/dev/null 2>&1; then",
            f"    exec timeout -k 5 {seconds} {cmd}",
            "fi",
        ]
    lines.append(f"exec {cmd}")
    return "\n".join(lines) + "\n"


def _readme(
    *,
    what: str,
    cluster: str,
    cluster_kind: str,
    pipeline: str,
    python: str,
    limits: Limits,
    record: ProbeRecord | None,
    signature: str | None,
    evidence: list[str],
    shrunk: ShrinkResult | None,
) -> str:
    obs = record.observation if record is not None else None
    meta = (obs.meta or {}) if obs is not None else {}
    far = {
        **(obs.far_side if obs is not None else {}),
        **{k: v for k, v in meta.items() if k in ("python", "cloudpickle")},
    }
    lines = [
        f"# Reproducer: {what}",
        "",
        f"- cluster: {cluster} ({cluster_kind}){f', host {obs.job.host}' if obs is not None and obs.job.host else ''}",
        f"- pipeline: {pipeline}",
        f"- far side: python {far.get('python') or '?'}, cloudpickle {far.get('cloudpickle') or '-'}",
        f"- recorded with threshold-probe {__version__}",
        f"- limits: memory {limits.memory_bytes or '-'} bytes, time {limits.time_s or '-'} s,"
        f" cores {limits.cores or '-'}",
        "",
        "## Run it",
        "",
        "```sh",
        f"PYTHON={shlex.quote(python)} sh run.sh",
        "```",
        "",
        "`run.sh` runs the files in this folder as the cluster ran them; only the Python standard library"
        + (" and cloudpickle are" if pipeline != "source" else " is")
        + " needed on that machine, not threshold-probe.",
        "Memory is limited with `ulimit -v` and time with `timeout`; a scheduler's own limits (SLURM's"
        " cgroup memory, for example) are not reproduced by a shell.",
        "",
        "## Expected failure",
        "",
        f"A non-zero exit, and on stderr the root error of `{signature or '?'}`:",
        "",
        "```",
        *evidence[:8],
        "```",
    ]
    if shrunk is not None:
        lines += [
            "",
            f"The function is the shrunk reproducer of shrink run {shrunk.run_id}: {shrunk.original_lines} -> "
            f"{shrunk.lines} lines, kept: {shrunk.kept_text}.",
        ]
    return "\n".join(lines) + "\n"


def write_repro(
    store: Store,
    config: ProbeConfig,
    run_id: str,
    out: Path,
    *,
    level: int | None = None,
    shrunk: bool = False,
) -> ReproFolder:
    """Write the folder; UserError when the run or level did not fail or `out` is not empty."""
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise UserError(f"{out} exists and is not an empty folder")
    info = store.get_run(run_id)
    result: ShrinkResult | None = None
    if info.kind == KIND:
        p = info.params
        workload: Workload = _workload_from(p["workload"])
        cluster, pipeline_name, limits = p["cluster"], p["pipeline"], Limits(**p["limits"])
        signature = p.get("signature")
        source_run, source_level = p.get("from_run"), p.get("level")
        what = f"shrink {info.run_id} of {p.get('label')}"
        if shrunk:
            result = latest_shrink(store, info.run_id)
    else:
        target = target_from_run(store, info.run_id, level, use="reproduce")
        workload, cluster, pipeline_name, limits = target.workload, target.cluster, target.pipeline, target.limits
        signature = target.signature
        source_run, source_level = info.run_id, target.level
        what = target.label
        if shrunk:
            result = latest_shrink(store, info.run_id, target.level)
    if result is not None:
        workload = dataclasses.replace(workload, source=result.source)
        signature = result.signature
        what += " (shrunk)"
    if info.kind == KIND:
        # The shrink's own first probe: the original, failing as recorded. A shrink of a function
        # (no run behind it) learnt its signature from that probe.
        record = _record(store, info.run_id, None, signature)
        if signature is None and record is not None:
            signature = record.verdict.signature
    else:
        record = _record(store, source_run, source_level, None) if source_run else None
    evidence = list(record.verdict.evidence) if record is not None else []
    pipeline = make_pipeline(pipeline_name)
    if not isinstance(pipeline, ShippingPipeline):
        raise UserError(f"the {pipeline_name} pipeline drives its own jobs: repro supports native, source and inline")
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise path_error(out, exc) from None
    staging = out / ".build"
    try:
        job = pipeline.build(workload, "repro", limits, staging)
    except ClientSideError as exc:
        raise UserError(f"the {pipeline_name} pipeline cannot build this function here: {exc}") from None
    finally:
        if staging.exists():
            for f in sorted(staging.rglob("*"), reverse=True):
                f.unlink() if f.is_file() else f.rmdir()
            staging.rmdir()
    written: list[str] = []
    for name, data in job.files.items():
        target_path = out / name
        target_path.parent.mkdir(parents=True, exist_ok=True)
        target_path.write_bytes(data)
        written.append(name)
    shared_paths: dict[str, str] = {}
    for name, data in job.shared.items():
        rel = name if name not in job.files else f"{SHARED_DIR}/{name}"
        (out / rel).parent.mkdir(parents=True, exist_ok=True)
        (out / rel).write_bytes(data)
        shared_paths[name] = rel
        written.append(rel)
    argv: list[str] = []
    for item in job.argv:
        if item == PYTHON:
            argv.append("$PYTHON")
            continue
        for name, rel in shared_paths.items():
            item = item.replace(shared_ref(name), rel)
        argv.append(item)
    python = _far_python(config, cluster)
    script = out / SCRIPT_NAME
    script.write_text(_script(argv, dict(job.env), limits, python, cluster))
    script.chmod(0o755)
    kind = info.cluster
    with contextlib.suppress(UserError):
        kind = config.cluster(cluster).type
    (out / README_NAME).write_text(
        _readme(
            what=what,
            cluster=cluster,
            cluster_kind=kind,
            pipeline=pipeline_name,
            python=python,
            limits=limits,
            record=record,
            signature=signature,
            evidence=evidence,
            shrunk=result,
        )
    )
    (out / "expected.json").write_text(json.dumps({"signature": signature, "evidence": evidence}, indent=2) + "\n")
    written += [SCRIPT_NAME, README_NAME, "expected.json"]
    return ReproFolder(
        folder=str(out),
        files=sorted(written),
        command=f"PYTHON={shlex.quote(python)} sh {shlex.quote(str(out / SCRIPT_NAME))}",
        cluster=cluster,
        pipeline=pipeline_name,
        signature=signature,
        shrunk=result is not None,
        limits=limits.model_dump(),
    )


__all__ = ["ReproFolder", "write_repro"]
