"""The benchmark harness: its arithmetic, its JSON schema, its wiring. No timed assertions:
the performance targets live in the benchmark and docs/benchmarks.md, not in tests."""

from __future__ import annotations

import json

import pytest

from wd_benchmarks import bandwidth, cli, report, runner, targets, timing
from wd_benchmarks.workloads import GROUPS, Workload, chapter, workloads
from weight_decay.cli import build_parser

TINY = Workload("tiny", "chapter", num_train=10, batch_size=4, num_inputs=3, epochs=2,
                num_val=2, lr=0.05)


def test_workloads_cover_the_issue_sizes():
    full = {w.name: w for w in workloads()}
    c = full["chapter"]
    assert (c.num_train, c.num_inputs, c.batch_size, c.epochs, c.lr) == (20, 200, 5, 10, 0.01)
    assert c.steps == 40
    assert (full["middle"].batch_size, full["middle"].num_inputs) == (256, 4096)
    assert (full["bandwidth"].batch_size, full["bandwidth"].num_inputs) == (1024, 65536)
    assert len([w for w in full.values() if w.group == "sweep"]) >= 4
    assert {w.group for w in workloads(quick=True)} == set(GROUPS)
    assert [w.group for w in workloads(groups=("chapter",))] == ["chapter"]


def test_bytes_count_x_once_per_step():
    assert TINY.steps == 2 * 3  # ceil(10 / 4) batches per epoch, the last one ragged
    assert TINY.bytes_per_run(4) == 2 * 10 * 3 * 4


def test_measure_interleaved_excludes_warm_up_and_round_robins():
    calls = []

    def candidate(name):
        return timing.Candidate(name, run=lambda: calls.append(name) or name,
                                sync=lambda result: result)

    results = timing.measure_interleaved([candidate("a"), candidate("b")], repeats=5,
                                         min_sample_s=0.0, settle_s=0.0)
    # warm-up + calibration (2 calls each), then 5 one-call samples, alternating
    assert calls == ["a", "a", "b", "b"] + ["a", "b"] * 5
    for result in results.values():
        assert result.repeats == 5 and result.calls_per_sample == 1
        assert result.min_s <= result.median_s <= result.max_s
        assert len(result.samples_s) == 5 and result.warmup_s >= 0


def test_summarize_and_bad_repeats():
    t = timing.summarize([3.0, 1.0, 2.0], warmup_s=9.0, calls=4)
    assert (t.median_s, t.min_s, t.max_s, t.warmup_s, t.calls_per_sample) == (2, 1, 3, 9, 4)
    with pytest.raises(ValueError, match="repeats"):
        timing.measure_interleaved([], repeats=0)


def _row(framework, implementation, us_per_step, workload="chapter", pct=None):
    return {"workload": workload, "framework": framework, "implementation": implementation,
            "device": "cpu", "dtype": "float32", "us_per_step": us_per_step,
            "pct_of_bandwidth": pct, "block_rows": None, "gbs": 1.0}


def test_targets_take_the_fastest_idiomatic_loop():
    rows = [_row("jax", "idiomatic", 20.0), _row("jax", "idiomatic-device", 500.0),
            _row("jax", "train-fused", 0.5), _row("jax", "train", 10.0),
            _row("torch", "idiomatic", 100.0), _row("torch", "train-fused", 25.0),
            _row("torch", "train-fused", 1.0, "bandwidth", pct=85.0),
            _row("jax", "train-fused", 1.0, "bandwidth", pct=40.0)]
    cuda = {"measured": False, "reason": "no GPU"}
    found = {t["target"]: t for t in targets.evaluate(rows, ["cpu"], "float32", cuda)}
    jax_fused = found["chapter: jax train-fused vs idiomatic"]
    assert jax_fused["measured"] == pytest.approx(40.0) and jax_fused["met"] is False
    assert found["chapter: jax train vs idiomatic"]["met"] is None  # reported only
    assert found["chapter: torch train-fused vs idiomatic"]["met"] is False  # 4x < 5x
    assert found["bandwidth: torch best implementation on cpu"]["met"] is True
    assert found["bandwidth: jax best implementation on cpu"]["met"] is False
    assert found["bandwidth: GPU"]["met"] is None and found["bandwidth: GPU"]["detail"] == "no GPU"
    assert "| NO |" in report.format_targets(found.values())


def test_make_row_fields_and_formulas():
    impl = runner.framework_module("numpy").implementations(TINY, "cpu", "float32")[0]
    t = timing.summarize([0.002, 0.001, 0.004], warmup_s=0.5, calls=1)
    row = report.make_row(TINY, impl, device="cpu", dtype="float32", timing=t, block_rows=None,
                          read_gbs=0.0002, matches=True)
    assert tuple(row) == report.ROW_KEYS
    assert row["us_per_step"] == pytest.approx(0.002 / 6 * 1e6)
    assert row["gbs"] == pytest.approx(240 / 0.002 / 1e9)
    assert row["pct_of_bandwidth"] == pytest.approx(100 * row["gbs"] / 0.0002)


def test_every_framework_runs_the_same_steps_as_the_reference(monkeypatch):
    """Each implementation's final w matches the float64 reference run (no timing checked)."""
    monkeypatch.setattr(timing, "SETTLE_S", 0.0)
    options = runner.Options(repeats=1, quiet=True)
    cuda = runner.cuda_report(options.frameworks)
    rows = runner.time_workload(TINY, "cpu", options, cuda, read_gbs=10.0)
    names = {(r["framework"], r["implementation"]) for r in rows}
    assert {("torch", "idiomatic"), ("torch", "train"), ("torch", "train-fused"),
            ("jax", "idiomatic"), ("jax", "train"), ("jax", "train-fused"),
            ("numpy", "reference")} <= names
    assert all(r["matches_reference"] for r in rows), [r for r in rows
                                                       if not r["matches_reference"]]


def test_run_writes_strict_json_table_and_plot(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(bandwidth, "QUICK_BYTES", 2**20)
    monkeypatch.setattr(runner, "workloads", lambda quick, groups: [TINY])
    status = cli.main(["--quick", "--repeats", "1", "--frameworks", "numpy", "--no-cold-start",
                       "--quiet", "--out-dir", str(tmp_path), "--name", "smoke"])
    assert status == 0
    payload = json.loads((tmp_path / "smoke.json").read_text())
    assert tuple(payload) == report.TOP_KEYS
    assert payload["format"] == report.FORMAT and payload["quick"] is True
    assert payload["bandwidth"]["cpu"]["read_gbs"] > 0
    assert [tuple(r) for r in payload["rows"]] == [report.ROW_KEYS]
    if not payload["cuda"]["measured"]:
        assert payload["cuda"]["reason"]
    assert (tmp_path / "smoke.png").read_bytes()[:4] == b"\x89PNG"
    out = capsys.readouterr().out
    assert "| tiny | numpy | reference | cpu | float32 |" in out
    assert "read bandwidth on cpu" in out


def test_weight_decay_bench_has_the_same_options():
    args = build_parser().parse_args(["bench", "--quick", "--frameworks", "jax,numpy",
                                      "--workloads", "chapter", "--no-plot"])
    assert args.quick and args.frameworks == ("jax", "numpy") and args.groups == ("chapter",)
    assert not args.plot and args.execute.__module__ == "weight_decay.commands.bench"
    direct = cli.build_parser().parse_args(["--quick", "--frameworks", "jax,numpy",
                                            "--workloads", "chapter", "--no-plot"])
    assert cli.options_from_args(direct) == cli.options_from_args(args)


def test_file_stem_names_device_and_machine():
    payload = {"devices": ["cpu"], "machine": {"cpu": "AMD EPYC 9B45", "logical_cpus": 2}}
    assert cli.file_stem(payload, quick=False) == "cpu-amd-epyc-9b45-2cpu"
    assert cli.file_stem(payload, quick=True).endswith("-quick")
    assert chapter().name == "chapter"


@pytest.mark.parametrize(("argv", "named"), [
    (["--repeats", "0"], "'0' is not an integer >= 1"),
    (["--frameworks", "mxnet"], "mxnet"),
    (["--bogus"], "unrecognized arguments: --bogus"),
    (["--name", "sub/run"], "--name 'sub/run' is not a file stem"),
    (["--name", ".."], "--name '..' is not a file stem"),
    (["--devices", "cuda", "--frameworks", "torch,jax"], "--devices cuda: no GPU visible"),
])
def test_bad_input_is_one_line_and_status_2(argv, named, capsys, monkeypatch):
    monkeypatch.setattr(cli, "execute", lambda *a, **k: pytest.fail("the timing must not start"))
    if "cuda" in argv and runner.cuda_report(("torch", "jax"))["measured"]:
        pytest.skip("a GPU is visible here: --devices cuda is not bad input")
    assert cli.main(argv) == 2
    captured = capsys.readouterr()
    assert captured.out == "" and captured.err.count("\n") == 1
    assert captured.err.startswith("python -m benchmarks: error: ") and named in captured.err


def test_an_out_dir_that_is_a_file_is_refused_before_timing(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(cli, "execute", lambda *a, **k: pytest.fail("the timing must not start"))
    (tmp_path / "taken").write_text("")
    assert cli.main(["--out-dir", str(tmp_path / "taken")]) == 2
    assert "taken" in capsys.readouterr().err
