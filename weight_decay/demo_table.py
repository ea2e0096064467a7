"""The rows, table and closing line that ``weight-decay demo`` prints.

A row is a dict: ``history`` (the :class:`~wd_core.history.History`), ``implementation``,
``dtype``, ``lambd``, the final ``train_loss`` and ``val_loss``, ``l2_penalty``, ``l2_norm``,
``kind`` (the tolerance-table entry that judged it, ``None`` for an oracle row) and
``agrees`` (``None`` for an oracle row, else whether ``w``, ``b`` and both loss curves match
the oracle within ``kind``).
"""

from __future__ import annotations

from wd_core.tolerances import TOLERANCES, is_close

COMPARED_FIELDS = ("w", "b", "train_loss", "val_loss")


def agrees(history, oracle, kind: str) -> bool:
    """Every compared field of ``history`` within tolerance ``kind`` of ``oracle``; two runs
    that diverge agree when they diverge in the same epoch."""
    if history.diverged or oracle.diverged:
        return history.diverged_epoch == oracle.diverged_epoch
    return all(is_close(getattr(history, f), getattr(oracle, f), kind) for f in COMPARED_FIELDS)


def row(name: str, dtype: str, lambd: float, history, *, oracle=None, kind=None) -> dict:
    """One table row; without ``oracle`` the row is itself an oracle."""
    return {
        "history": history,
        "implementation": name, "dtype": dtype, "lambd": lambd,
        "train_loss": history.train_loss[-1], "val_loss": history.val_loss[-1],
        "l2_penalty": history.l2_penalty, "l2_norm": history.l2_norm,
        "kind": None if oracle is None else kind,
        "agrees": None if oracle is None else agrees(history, oracle, kind),
    }


def format_table(rows, *, oracle_column: str = "matches reference") -> str:
    """A markdown table of ``rows``."""
    lines = [
        f"| implementation | dtype | lambd | train loss | val loss | l2_penalty | l2_norm "
        f"| {oracle_column} |",
        "|---|---|---:|---:|---:|---:|---:|---|",
    ]
    for r in rows:
        verdict = {None: "(oracle)", True: "yes", False: "NO"}[r["agrees"]]
        lines.append(
            f"| {r['implementation']} | {r['dtype']} | {r['lambd']:g} | {r['train_loss']:.6e} "
            f"| {r['val_loss']:.6e} | {r['l2_penalty']:.6e} | {r['l2_norm']:.6e} | {verdict} |"
        )
    return "\n".join(lines)


def verdict_line(rows, oracle_name: str = "the float64 reference") -> str:
    """One line: do all framework rows agree with their oracle, and within which tolerance."""
    framework = [r for r in rows if r["agrees"] is not None]
    kinds = sorted({r["kind"] for r in framework}, key=lambda k: TOLERANCES[k][0])
    within = ", ".join(f"rtol {TOLERANCES[k][0]:g} ({k} tolerance)" for k in kinds)
    failed = [r for r in framework if not r["agrees"]]
    if failed:
        names = ", ".join(f"{r['implementation']} (lambd={r['lambd']:g})" for r in failed)
        return (f"MISMATCH: {len(failed)} of {len(framework)} framework rows differ from "
                f"{oracle_name} beyond {within}: {names}")
    return (f"All {len(framework)} framework rows agree with {oracle_name} "
            f"(w, b and both loss curves) within {within}.")
