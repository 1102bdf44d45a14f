"""What publish tells a person in a CI log, or a machine with --json."""

from __future__ import annotations

from typing import Any

from .plan import CREATE, DELETE, KEEP, UNCHANGED, UPDATE
from .run import Result

SHOWN_PER_OP = 50  # lines of each kind; a 10,000-tenant rotation stays a readable log
SHOWN_PATHS = 10  # invalidation paths on their one line


def _capped(label: str, items: list[str]) -> list[str]:
    shown = [f"  {label:<7} {item}" for item in items[:SHOWN_PER_OP]]
    if len(items) > SHOWN_PER_OP:
        shown.append(f"  {label:<7} ... and {len(items) - SHOWN_PER_OP} more")
    return shown


def lines(result: Result, target: str) -> list[str]:
    plan = result.plan
    out = [f"plan for {target}:"]
    for op in (CREATE, UPDATE, DELETE, KEEP):
        out += _capped(op, [f"{a.key}  ({a.reason})" for a in plan.of(op)])
    out.append(f"  {len(plan.of(UNCHANGED))} unchanged")
    kids = []
    for path, (added, removed) in sorted(plan.kid_changes.items()):
        change = " ".join([*(f"+{k}" for k in added), *(f"-{k}" for k in removed)])
        kids.append(f"{path}: {change}")
    out += _capped("kids", kids)
    if result.invalidation_paths:
        paths = result.invalidation_paths
        more = f" ... and {len(paths) - SHOWN_PATHS} more" if len(paths) > SHOWN_PATHS else ""
        out.append(
            f"CloudFront invalidation {result.invalidation_id}: "
            + " ".join(paths[:SHOWN_PATHS])
            + more
        )
    for distribution, paths in sorted(result.pending_invalidations.items()):
        out.append(
            f"CloudFront {distribution}: {len(paths)} paths still to invalidate "
            "(kept in the state index; the next publish sends them)"
        )
    return out


def planned(result: Result) -> tuple[int, int]:
    """The document PUTs the plan makes and the bytes they send."""
    uploads = [a.entry for a in result.plan.of(CREATE, UPDATE) if a.entry is not None]
    return len(uploads), sum(e.size for e in uploads)


def summary(result: Result) -> str:
    counts = result.plan.counts()
    head = (
        f"{counts[CREATE]} created, {counts[UPDATE]} updated, "
        f"{counts[UNCHANGED]} unchanged, {counts[DELETE]} deleted"
    )
    if result.dry_run:
        puts, size = planned(result)
        return (
            f"dry run, would publish: {head}; would send {size} bytes in {puts} PUTs, "
            f"{result.seconds:.1f} s"
        )
    sent = f"{result.uploaded_bytes} bytes in {result.puts} PUTs"
    return f"published: {head}; {sent}, {result.seconds:.1f} s"


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
        "planned_puts": planned(result)[0],
        "planned_bytes": planned(result)[1],
        "seconds": round(result.seconds, 3),
        "failures": result.failures,
        "invalidation": {"id": result.invalidation_id, "paths": result.invalidation_paths}
        if result.invalidation_id
        else None,
        "pending_invalidations": result.pending_invalidations,
    }
