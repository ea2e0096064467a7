"""docs/optimizers.md's table of naive ports is what ``measure_naive_ports`` measures now.

Each row is recomputed: the exact twin's error within 1e-12 (Muon: within its derived bfloat16
tolerance), and the namesake's error equal to the document's to two significant figures (a
namesake that is a twin: within 1e-12 on both sides)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from parity_tests import measure_naive_ports as naive

pytest.importorskip("torch")
pytest.importorskip("jax")

DOC = (Path(__file__).resolve().parents[1] / "docs" / "optimizers.md").read_text(
    encoding="utf-8")


def documented() -> dict[str, tuple[str, str]]:
    """``{class name: (twin, namesake)}`` as the document prints them."""
    block = DOC.split("<!-- naive-ports -->")[1].split("<!-- /naive-ports -->")[0]
    rows = {}
    for line in block.strip().splitlines()[2:]:
        cells = [c.strip() for c in line.strip("|").split("|")]
        rows[re.match(r"`(\w+)\(", cells[0]).group(1)] = (cells[1], cells[2])
    return rows


def test_every_config_is_documented():
    assert sorted(documented()) == sorted(n.rsplit(".", 1)[-1] for n in naive.CONFIGS)


def twin_limit(torch_class: str) -> float:
    """1e-12; Muon's derived bfloat16 bound (``muon.parameter_tolerance``) over its layers,
    relative to parameters of order one."""
    if torch_class not in naive.MATRICES_ONLY:
        return 1e-12
    from wd_jax.optim.muon import adjusted_ratio, parameter_tolerance

    ratio = max(adjusted_ratio(tuple(p.shape)) for p in naive._model(torch_class).parameters())
    return parameter_tolerance(naive.STEPS, naive.CONFIGS[torch_class]["lr"], ratio)


@pytest.mark.parametrize("torch_class", sorted(naive.CONFIGS))
def test_documented_row_is_measured(torch_class):
    twin, namesake = naive.measure(torch_class)
    doc_twin, doc_namesake = documented()[torch_class.rsplit(".", 1)[-1]]
    assert twin <= twin_limit(torch_class)
    assert float(doc_twin) <= 1e-12
    if namesake is None:
        assert doc_namesake == "no namesake"
    elif float(doc_namesake) <= 1e-12:
        assert namesake <= 1e-12
    else:
        assert f"{namesake:.1e}" == doc_namesake
