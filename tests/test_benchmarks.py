"""The benchmark harness: its arithmetic, its JSON schema, its wiring. No timed assertions:
the performance targets live in the benchmark and docs/benchmarks.md, not in tests."""

from __future__ import annotations

import dataclasses
import json
import sys

import pytest

from wd_benchmarks import bandwidth, cli, gemm, memory, report, runner, targets, timing
from wd_benchmarks.workloads import (
    DEFAULT_GROUPS,
    GROUPS,
    TIMED_GROUPS,
    Workload,
    chapter,
    workloads,
)
from weight_decay.cli import build_parser

TINY = Workload("tiny", "chapter", num_train=10, batch_size=4, num_inputs=3, epochs=2,
                num_val=2, lr=0.05)
TINY_SWEEP = dataclasses.replace(TINY, name="tiny-sweep", group="sweep", lambdas=4)


def test_workloads_cover_the_issue_sizes():
    full = {w.name: w for w in workloads()}
    c = full["chapter"]
    assert (c.num_train, c.num_val, c.num_inputs, c.batch_size, c.epochs, c.lr) == \
        (20, 100, 200, 5, 200, 0.01)
    assert c.steps == 800 and chapter(10).steps == 40
    assert (full["middle"].batch_size, full["middle"].num_inputs) == (256, 4096)
    b = full["bandwidth"]
    assert (b.num_train, b.num_inputs, b.batch_size) == (16384, 16384, 1024)
    s = full["sweep-L64"]
    assert (s.num_train, s.num_inputs, s.batch_size, s.lambdas, s.epochs) == \
        (4096, 1024, 256, 64, 5)
    assert len([w for w in full.values() if w.group == "sizes"]) >= 4
    assert {w.group for w in workloads(quick=True)} == set(TIMED_GROUPS)
    assert [w.group for w in workloads(groups=("chapter",))] == ["chapter"]
    assert workloads(groups=("memory",)) == [] and "memory" in DEFAULT_GROUPS
    # the data-parallel group (several worker processes) runs only when named
    assert "data-parallel" in GROUPS and "data-parallel" not in DEFAULT_GROUPS
    assert cli.build_parser().parse_args([]).groups == DEFAULT_GROUPS


def test_bytes_count_x_once_per_step_and_once_per_evaluation():
    assert TINY.steps == 2 * 3  # ceil(10 / 4) batches per epoch, the last one ragged
    # per epoch: 10 training rows for the steps, 10 + 2 rows for the two losses
    assert TINY.bytes_per_run(4) == 2 * (10 + 10 + 2) * 3 * 4
    assert TINY_SWEEP.bytes_per_run(4) == TINY.bytes_per_run(4)  # lambdas share the reads


def test_flops_count_both_step_products_and_both_loss_products():
    # per epoch: steps 2 * 2 * n * d (B summed over the batches is n), losses 2 * (n + n_val) * d
    assert TINY.flops_per_run() == 2 * (2 * 2 * 10 * 3 + 2 * (10 + 2) * 3)
    assert TINY_SWEEP.flops_per_run() == 4 * TINY.flops_per_run()
    s = workloads()[-1]  # the issue's sweep: 4096 x 1024, B=256, 64 lambdas, 5 epochs
    per_step = 2 * 2 * 256 * 1024 * 64
    assert s.flops_per_run() == 5 * (16 * per_step + 2 * (4096 + s.num_val) * 1024 * 64)


def test_sweep_lambdas_hold_the_checked_lambda():
    assert TINY.lambda_values() == [3.0] and TINY.check_lane == 0
    assert TINY_SWEEP.lambda_values() == [0.0, 1.5, 3.0, 4.5]
    assert TINY_SWEEP.lambda_values()[TINY_SWEEP.check_lane] == TINY_SWEEP.lambd


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


def _row(framework, implementation, median_s, workload="chapter", group=None, **more):
    return {"workload": workload, "group": group or workload, "framework": framework,
            "implementation": implementation, "device": "cpu", "dtype": "float32",
            "median_s": median_s, "epochs": 200, "pct_of_bandwidth": None, "pct_of_gemm": None,
            "block_rows": None, "gbs": 1.0, "gflops": 1.0, "num_inputs": 8, "batch_size": 4,
            **more}


def _memory_entry(torch_peaks=(100, 150), jax_peaks=(100, 110), sweep=None):
    case = dataclasses.asdict(memory.QUICK)
    runs = [{"framework": fw, "epochs": epochs, "peak_rss_bytes": peak * 2**20,
             "train_s": 1.0, "seconds": 2.0, "error": None, "returncode": 0, "timed_out": False}
            for fw, peaks in (("torch", torch_peaks), ("jax", jax_peaks))
            for epochs, peak in zip((case["short_epochs"], case["long_epochs"]), peaks,
                                    strict=True)]
    return {"case": case, "growth_if_kept_bytes": memory.QUICK.growth_if_kept_bytes(),
            "runs": runs, "sweep": sweep}


def test_targets_from_fake_rows():
    rows = [_row("jax", "idiomatic", 14.0), _row("jax", "train-fused", 1.0),
            _row("jax", "train", 2.0), _row("jax", "program", 1.5),
            _row("jax", "program-fused", 0.5),
            _row("torch", "idiomatic", 100.0), _row("torch", "train-fused", 20.0),
            _row("torch", "train", 110.0),
            _row("torch", "train-fused", 1.0, "bandwidth", pct_of_bandwidth=70.0),
            _row("torch", "idiomatic", 1.0, "bandwidth", pct_of_bandwidth=90.0),
            _row("jax", "train", 1.0, "bandwidth", pct_of_bandwidth=40.0),
            _row("jax", "train-fused", 1.0, "bandwidth", pct_of_bandwidth=50.0),
            _row("torch", "sweep", 1.0, "sweep-L64", "sweep", pct_of_gemm=30.0),
            _row("torch", "sweep-fused", 1.0, "sweep-L64", "sweep", pct_of_gemm=55.0),
            _row("jax", "sweep", 1.0, "sweep-L64", "sweep", pct_of_gemm=45.0)]
    cuda = {"measured": False, "reason": "no GPU"}
    gemms = {"cpu": {"gflops": 400.0}}
    sweep = {"num": 64, "epochs": 20000, "timed_out": False, "seconds": 90.0, "error": None,
             "peak_rss_bytes": 2**30, "file_bytes": 150_000_000}
    found = {t["target"]: t for t in targets.evaluate(rows, ["cpu"], "float32", cuda, gemms,
                                                      _memory_entry(sweep=sweep))}
    jax_fused = found["chapter: jax train-fused vs idiomatic"]
    assert jax_fused["measured"] == pytest.approx(14.0) and jax_fused["met"] is True
    assert jax_fused["bound"] == "at least" and jax_fused["goal"] == 12
    assert found["chapter: jax train vs idiomatic"]["met"] is False  # 7x < 8x
    assert found["chapter: torch train-fused vs idiomatic"]["met"] is False  # 5x < 8x
    torch_train = found["chapter: torch train vs idiomatic"]
    assert torch_train["met"] is None and torch_train["bound"] is None  # reported only
    overhead = found["chapter: jax train vs its compiled program"]
    assert overhead["measured"] == pytest.approx(2.0 / 1.5) and overhead["met"] is True
    assert overhead["bound"] == "at most"
    assert found["chapter: jax train-fused vs its compiled program"]["met"] is False  # 2x
    # bandwidth: the best *public* call (the idiomatic loop's 90% does not count)
    assert found["bandwidth: torch public API, best"]["measured"] == 70.0
    assert found["bandwidth: torch public API, best"]["met"] is True
    assert found["bandwidth: jax public API, best"]["measured"] == 50.0
    assert found["sweep: torch public API, best"]["met"] is True
    assert "sweep-fused" in found["sweep: torch public API, best"]["detail"]
    assert found["sweep: jax public API, best"]["met"] is False
    memory_torch = found["memory: torch train, 200 vs 10 epochs, peak RSS"]
    assert memory_torch["measured"] == pytest.approx(1.5) and memory_torch["met"] is False
    assert found["memory: jax train, 200 vs 10 epochs, peak RSS"]["met"] is True
    assert found["weight-decay sweep --num 64 --epochs 20000: seconds"]["met"] is True
    size = found["weight-decay sweep --num 64 --epochs 20000: file size"]
    assert size["measured"] == 150.0 and size["met"] is False
    assert found["bandwidth: GPU"]["met"] is None and found["bandwidth: GPU"]["detail"] == "no GPU"
    table = report.format_targets(found.values())
    assert "| NO |" in table and "| <= 1.5 |" in table and "| >= 12 |" in table


def test_failed_memory_runs_and_sweep_are_not_met():
    entry = _memory_entry(sweep={"num": 64, "epochs": 20000, "timed_out": True,
                                 "seconds": 150.0, "error": "killed after 150 s",
                                 "peak_rss_bytes": 2**30, "file_bytes": None})
    entry["runs"][1].update(error="killed after the timeout", train_s=None)
    found = {t["target"]: t for t in targets.evaluate([], ["cpu"], "float32", memory=entry)}
    failed = found["memory: torch train, 200 vs 10 epochs, peak RSS"]
    assert failed["met"] is False and "killed" in failed["detail"]
    seconds = found["weight-decay sweep --num 64 --epochs 20000: seconds"]
    assert seconds["met"] is False and seconds["measured"] is None
    assert found["weight-decay sweep --num 64 --epochs 20000: file size"]["met"] is False


def test_make_row_fields_and_formulas():
    impl = runner.framework_module("numpy").implementations(TINY, "cpu", "float32")[0]
    t = timing.summarize([0.002, 0.001, 0.004], warmup_s=0.5, calls=1)
    row = report.make_row(TINY, impl, device="cpu", dtype="float32", timing=t, block_rows=None,
                          read_gbs=0.0002, matches=True, gemm_gflops=0.0001)
    assert tuple(row) == report.ROW_KEYS
    assert row["us_per_step"] == pytest.approx(0.002 / 6 * 1e6)
    assert row["gbs"] == pytest.approx(528 / 0.002 / 1e9)
    assert row["pct_of_bandwidth"] == pytest.approx(100 * row["gbs"] / 0.0002)
    assert row["gflops"] == pytest.approx(384 / 0.002 / 1e9)
    assert row["pct_of_gemm"] == pytest.approx(100 * row["gflops"] / 0.0001)
    no_gemm = report.make_row(TINY, impl, device="cpu", dtype="float32", timing=t,
                              block_rows=None, read_gbs=None, matches=False)
    assert no_gemm["pct_of_gemm"] is None and no_gemm["pct_of_bandwidth"] is None


def test_gemm_rate_is_one_step_at_the_best_time_of_each_product():
    probes = [{"framework": "torch", "product": "a", "min_s": 2.0},
              {"framework": "jax", "product": "a", "min_s": 1.0},
              {"framework": "torch", "product": "b", "min_s": 3.0}]
    # 2 products of 6e9 flops each in 1 s + 3 s
    assert gemm.pair_gflops(probes, ["a", "b"], 6e9) == pytest.approx(3.0)
    assert gemm.pair_gflops(probes, ["a", "c"], 6e9) is None
    assert gemm.shapes(TINY_SWEEP) == [((4, 3), (3, 4)), ((3, 4), (4, 4))]


def test_gemm_measure_times_both_frameworks_and_shapes():
    entry = gemm.measure(TINY_SWEEP, "cpu", ("torch", "jax"), repeats=1, min_sample_s=0.0)
    assert {(p["framework"], p["product"]) for p in entry["probes"]} == {
        (fw, product) for fw in ("torch", "jax") for product in ("(4x3)@(3x4)", "(3x4)@(4x4)")}
    assert entry["gflops"] > 0 and entry["shapes"] == [[[4, 3], [3, 4]], [[3, 4], [4, 4]]]


@pytest.mark.parametrize("workload", [TINY, TINY_SWEEP], ids=["run", "sweep"])
def test_every_implementation_runs_the_same_steps_as_the_reference(monkeypatch, workload):
    """Each implementation's final w and per-epoch losses match the float64 reference run
    (no timing checked)."""
    monkeypatch.setattr(timing, "SETTLE_S", 0.0)
    options = runner.Options(repeats=1, quiet=True)
    cuda = runner.cuda_report(options.frameworks)
    rows = runner.time_workload(workload, "cpu", options, cuda, read_gbs=10.0,
                                gemm_gflops=1.0 if workload.lambdas > 1 else None)
    names = {(r["framework"], r["implementation"]) for r in rows}
    if workload.lambdas > 1:
        assert names == {(fw, impl) for fw in ("torch", "jax")
                         for impl in ("sweep", "sweep-fused")}
        assert all(r["pct_of_gemm"] is not None for r in rows)
    else:
        assert names == {("torch", "idiomatic"), ("torch", "train"), ("torch", "train-fused"),
                         ("jax", "idiomatic"), ("jax", "train"), ("jax", "train-fused"),
                         ("jax", "program"), ("jax", "program-fused"), ("numpy", "reference")}
    assert all(r["matches_reference"] for r in rows), [r for r in rows
                                                       if not r["matches_reference"]]


def test_matches_reference_judges_the_losses_too():
    from wd_core import reference

    oracle = reference.train(TINY.data(), lambd=TINY.lambd, lr=TINY.lr, max_epochs=TINY.epochs)
    good = (oracle.w, oracle.train_loss, oracle.val_loss)
    assert runner.matches_reference(good, oracle, "float32")
    assert not runner.matches_reference((oracle.w, oracle.train_loss * 1.01, oracle.val_loss),
                                        oracle, "float32")
    assert not runner.matches_reference((oracle.w, oracle.train_loss, oracle.val_loss[:1]),
                                        oracle, "float32")


def test_out_file_writes_strict_json_table_and_plot(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(bandwidth, "QUICK_BYTES", 2**20)
    sized = dataclasses.replace(TINY, group="sizes")  # the plot's group: lines and the floor
    monkeypatch.setattr(runner, "workloads", lambda quick, groups: [sized])
    out = tmp_path / "new" / "smoke.json"
    status = cli.main(["--quick", "--repeats", "1", "--frameworks", "numpy", "--no-cold-start",
                       "--workloads", "sizes", "--quiet", "--out", str(out)])
    assert status == 0
    payload = json.loads(out.read_text())
    assert tuple(payload) == report.TOP_KEYS
    assert payload["format"] == report.FORMAT and payload["version"] == report.FORMAT_VERSION
    assert payload["quick"] is True and payload["gemm"] == {} and payload["memory"] is None
    assert payload["data_parallel"] == [] and payload["extras"]["sweep_cost"] == []
    assert payload["bandwidth"]["cpu"]["read_gbs"] > 0
    assert [tuple(r) for r in payload["rows"]] == [report.ROW_KEYS]
    assert all(set(t) == {"target", "workload", "framework", "device", "measured", "goal",
                          "bound", "unit", "met", "detail"} for t in payload["targets"])
    if not payload["cuda"]["measured"]:
        assert payload["cuda"]["reason"]
    assert out.with_suffix(".png").read_bytes()[:4] == b"\x89PNG"
    printed = capsys.readouterr().out
    assert "| tiny | numpy | reference | cpu | float32 |" in printed
    assert "read bandwidth on cpu" in printed and f"wrote {out}" in printed


def test_out_dir_and_name_still_name_the_files(tmp_path, monkeypatch):
    monkeypatch.setattr(bandwidth, "QUICK_BYTES", 2**20)
    monkeypatch.setattr(runner, "workloads", lambda quick, groups: [TINY])
    assert cli.main(["--quick", "--repeats", "1", "--frameworks", "numpy", "--no-cold-start",
                     "--quiet", "--no-plot", "--out-dir", str(tmp_path), "--name", "s"]) == 0
    assert json.loads((tmp_path / "s.json").read_text())["rows"]
    assert not (tmp_path / "s.png").exists()


def test_memory_child_peak_is_its_own_and_a_timeout_kills_it():
    grown = memory.run_child([sys.executable, "-c",
                              "b = bytearray(200 * 2**20); b[::4096] = b'x' * len(b[::4096])"],
                             timeout_s=60)
    assert grown["returncode"] == 0 and not grown["timed_out"]
    # its own 200 MiB, not this test process's resident size
    assert 200 * 2**20 < grown["peak_rss_bytes"] < 400 * 2**20
    slow = memory.run_child([sys.executable, "-c", "import time; time.sleep(30)"], timeout_s=0.5)
    assert slow["timed_out"] and slow["returncode"] != 0 and slow["seconds"] < 20


def test_memory_child_trains_and_reports(capsys):
    result = memory.child(["jax", "--epochs", "3", "--num-train", "6", "--num-val", "2",
                           "--num-inputs", "5", "--batch-size", "3"])
    assert result["epochs"] == 3 and result["train_s"] > 0
    assert memory.run_command("jax", memory.FULL, 2000)[3:] == [
        "jax", "--epochs", "2000", "--num-train", "32", "--num-val", "16", "--num-inputs",
        "200000", "--batch-size", "16"]


def test_the_issue_sweep_runs_as_a_child_and_writes_its_file():
    assert memory.sweep_command(memory.FULL, "f.json")[1:] == [
        "-m", "weight_decay", "sweep", "--backend", "torch", "--num", "64", "--epochs", "20000",
        "--out", "f.json", "--quiet"]
    case = dataclasses.replace(memory.QUICK, sweep_num=3, sweep_epochs=4)
    result = memory.measure_sweep(case, log=lambda line: None)
    assert result["error"] is None and result["returncode"] == 0
    assert result["file_bytes"] > 0 and result["peak_rss_bytes"] > 0
    assert result["command"][:2] == ["weight-decay", "sweep"]


def test_memory_sizes_can_detect_growth():
    """Keeping w per epoch must add more than the 1.2x the target allows, at the sizes run."""
    # A short run's peak: the interpreter, a framework, the data (float64 and on the device).
    for case, baseline in ((memory.FULL, 600 * 2**20), (memory.QUICK, 600 * 2**20),
                           (memory.ISSUE, 4.5 * 2**30)):
        assert case.num_inputs == 200_000
        assert case.growth_if_kept_bytes() > (memory.RSS_RATIO - 1) * baseline


def test_memory_n1024_runs_the_issue_sizes_and_only_when_asked_for():
    assert memory.case_for(quick=False, issue_size=True) == memory.ISSUE
    assert memory.case_for(quick=True, issue_size=True) == memory.ISSUE
    assert memory.case_for(quick=True, issue_size=False) == memory.QUICK
    assert memory.case_for(quick=False, issue_size=False) == memory.FULL
    assert (memory.ISSUE.num_train, memory.ISSUE.long_epochs) == (1024, 2000)
    assert "memory-n1024" not in DEFAULT_GROUPS


def test_data_parallel_rows_are_printed_with_their_own_table():
    row = {"framework": "torch", "strategy": "ddp", "processes": 2, "threads_per_process": 1,
           "ms_per_step": 10.0, "min_s": 0.1, "max_s": 0.2, "comm_share": 0.25,
           "speedup": 0.8, "matches_single_process": True}
    table = report.format_data_parallel({"data_parallel": [row]})
    assert "| torch | ddp | 2 x 1 | 10.0 |" in table and "25.0%" in table
    assert report.format_data_parallel({"data_parallel": []}) == ""


def test_weight_decay_bench_has_the_same_options():
    args = build_parser().parse_args(["bench", "--quick", "--frameworks", "jax,numpy",
                                      "--workloads", "chapter,memory", "--no-plot"])
    assert args.quick and args.frameworks == ("jax", "numpy")
    assert args.groups == ("chapter", "memory")
    assert not args.plot and args.execute.__module__ == "weight_decay.commands.bench"
    direct = cli.build_parser().parse_args(["--quick", "--frameworks", "jax,numpy",
                                            "--workloads", "chapter,memory", "--no-plot"])
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
    (["--out-d", "x"], "unrecognized arguments: --out-d"),  # no prefix matching
    (["--name", "sub/run"], "--name 'sub/run' is not a file stem"),
    (["--name", ".."], "--name '..' is not a file stem"),
    (["--out", "run.txt"], "--out 'run.txt' is not a .json file name"),
    (["--out", "run.json", "--name", "x"], "--out FILE.json names the file itself"),
    (["--out", "run.json", "--out-dir", "x"], "--out FILE.json names the file itself"),
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
    (tmp_path / "folder.json").mkdir()
    assert cli.main(["--out", str(tmp_path / "folder.json")]) == 2
    assert "is a folder" in capsys.readouterr().err


@pytest.mark.parametrize("args", [["--processes", "0"], ["--repeats", "0"],
                                  ["--frameworks", "numpy"], ["--proc", "2"]], ids=" ".join)
def test_data_parallel_command_bad_input_is_one_line_and_exit_2(args, capsys):
    from wd_benchmarks import data_parallel

    assert data_parallel.main(args) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("python -m benchmarks.data_parallel: error: ")
