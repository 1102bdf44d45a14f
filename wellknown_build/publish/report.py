"""What publish tells a person in a CI log, or a machine with --json."""

from __future__ import annotations

from typing import Any

from .plan import CREATE, DELETE, KEEP, UNCHANGED, UPDATE
from .run import Result

SHOWN_PER_OP = 50


def lines(result: Result, target: str) -> list[str]:
    plan = result.plan
    out = [f"plan for {target}:"]
    for op in (CREATE, UPDATE, DELETE, KEEP):
        actions = plan.of(op)
        for action in actions[:SHOWN_PER_OP]:
            out.append(f"  {op:<7} {action.key}  ({action.reason})")
        if len(actions) > SHOWN_PER_OP:
            out.append(f"  {op:<7} ... and {len(actions) - SHOWN_PER_OP} more")
    out.append(f"  {len(plan.of(UNCHANGED))} unchanged")
    for path, (added, removed) in sorted(plan.kid_changes.items()):
        change = " ".join([*(f"+{k}" for k in added), *(f"-{k}" for k in removed)])
        out.append(f"  kids    {path}: {change}")
    if result.invalidation_paths:
        out.append(
            f"CloudFront invalidation {result.invalidation_id}: "
            + " ".join(result.invalidation_paths)
        )
    for distribution, paths in sorted(result.pending_invalidations.items()):
        out.append(
            f"CloudFront {distribution}: {len(paths)} paths still to invalidate "
            "(kept in the state index; the next publish sends them)"
        )
    return out


def summary(result: Result) -> str:
    counts = result.plan.counts()
    verb = "dry run, would publish" if result.dry_run else "published"
    return (
        f"{verb}: {counts[CREATE]} created, {counts[UPDATE]} updated, "
        f"{counts[UNCHANGED]} unchanged, {counts[DELETE]} deleted; "
        f"{result.uploaded_bytes} bytes in {result.puts} PUTs, {result.seconds:.1f} s"
    )


def as_json(result: Result) -> dict[str, Any]:
    plan = result.plan
    return {
        "dry_run": result.dry_run,
        "counts": plan.counts(),
        "actions": [
            {"op": a.op, "key": a.key, "reason": a.reason}
            for a in plan.actions
            if a.op != UNCHANGED
        ],
        "kids": {p: {"added": a, "removed": r} for p, (a, r) in sorted(plan.kid_changes.items())},
        "puts": result.puts,
        "deletes": result.deletes,
        "bytes": result.uploaded_bytes,
        "seconds": round(result.seconds, 3),
        "failures": result.failures,
        "invalidation": {"id": result.invalidation_id, "paths": result.invalidation_paths}
        if result.invalidation_id
        else None,
        "pending_invalidations": result.pending_invalidations,
    }
