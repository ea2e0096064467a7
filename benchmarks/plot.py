"""The plot: time per step against d (log-log), one line per implementation, CPU and CUDA.

Points are the ``sizes`` rows (fixed batch size, d varied). The black dotted line is the
memory floor: a run's bytes (``X`` once per step and once per evaluation) spread over its
steps, read at the read bandwidth measured in the same run (``bytes_per_run / steps /
read_gbs``). A panel whose device was not measured says why instead.
"""

from __future__ import annotations

import io
import textwrap

from wd_core.atomic import write_bytes_atomic

PANELS = ("cpu", "cuda")
GROUP = "sizes"


def _lines(rows, device):
    lines = {}
    for r in rows:
        if r["group"] == GROUP and r["device"].partition(":")[0] == device:
            lines.setdefault(f"{r['framework']} {r['implementation']}", []).append(
                (r["num_inputs"], r["us_per_step"]))
    return {name: sorted(points) for name, points in sorted(lines.items())}


def _style(name: str) -> str:
    implementation = name.split(" ", 1)[1]
    if implementation.startswith("idiomatic"):
        return "--"
    return {"train": ":", "program": ":", "reference": "-."}.get(implementation, "-")


def _floor(rows, device, read_gbs):
    points = sorted({(r["num_inputs"], r["bytes_per_run"] / r["steps"]) for r in rows
                     if r["group"] == GROUP and r["device"].partition(":")[0] == device})
    return [(d, nbytes / (read_gbs * 1e9) * 1e6) for d, nbytes in points]


def render(payload) -> bytes:
    """The PNG as bytes (matplotlib's Agg backend; no window)."""
    from matplotlib.figure import Figure

    figure = Figure(figsize=(12, 5), layout="constrained")
    axes = figure.subplots(1, len(PANELS), sharey=True)
    batch = {r["batch_size"] for r in payload["rows"] if r["group"] == GROUP}
    for ax, device in zip(axes, PANELS, strict=True):
        lines = _lines(payload["rows"], device)
        bw = payload["bandwidth"].get(device, {}).get("read_gbs")
        title = device.upper() + (f" (read bandwidth {bw:.0f} GB/s)" if bw else "")
        ax.set_title(title)
        ax.set_xlabel("d (num_inputs)")
        ax.grid(True, which="both", alpha=0.3)
        if not lines:
            reason = payload["cuda"].get("reason") if device == "cuda" else "no rows"
            ax.text(0.5, 0.5, "not measured:\n" + textwrap.fill(reason, 50), ha="center",
                    va="center", transform=ax.transAxes)
            ax.set_xscale("log")
            ax.set_xlim(axes[0].get_xlim())
            continue
        for name, points in lines.items():
            ds, us = zip(*points, strict=True)
            ax.loglog(ds, us, _style(name), marker="o", label=name)
        if bw:
            ds, us = zip(*_floor(payload["rows"], device, bw), strict=True)
            ax.loglog(ds, us, "k:", linewidth=2,
                      label="X read once per step and evaluation at the read bandwidth")
        ax.legend(fontsize=8)
    axes[0].set_ylabel(f"us per step (B={', '.join(map(str, sorted(batch)))}), median")
    figure.suptitle(f"SGD with weight decay, time per step vs d ({payload['machine']['cpu']})")
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=110)
    return buffer.getvalue()


def write_plot(path, payload):
    """Render and write the PNG atomically."""
    return write_bytes_atomic(path, render(payload))
