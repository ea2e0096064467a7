"""wd_core.sweeps: lambda validation and grid, the sweep JSON format (exact, strict, atomic)."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest

from wd_core import History, SyntheticData, reference
from wd_core.errors import InputTypeError
from wd_core.sweeps import (
    check_lambdas,
    data_from_config,
    lambda_grid,
    read_results,
    read_sweep,
    write_sweep,
)

SMALL = SyntheticData(num_train=6, num_val=4, num_inputs=5, batch_size=3, seed=3)


def reference_sweep(lambdas, lr=0.1, max_epochs=3):
    return [reference.train(SMALL, lambd=lambd, lr=lr, max_epochs=max_epochs,
                            epoch_params=True) for lambd in lambdas]


def test_check_lambdas_returns_float64_in_order():
    values = check_lambdas((3, np.float32(0.5), 0))
    assert values.dtype == np.float64
    np.testing.assert_array_equal(values, [3.0, 0.5, 0.0])


def test_lambda_grid_is_zero_then_log_spaced_up_to_max():
    grid = lambda_grid(5, 10.0)
    np.testing.assert_allclose(grid, [0.0, 0.01, 0.1, 1.0, 10.0], rtol=1e-15)
    assert len(lambda_grid(64, 10.0)) == 64 and lambda_grid(64, 10.0)[-1] == 10.0
    np.testing.assert_array_equal(lambda_grid(1, 10.0), [0.0])


@pytest.mark.parametrize(("num", "max_lambda", "message"), [
    (0, 10.0, "num must be a positive integer"),
    (4, 0.0, "max lambda must be a finite number > 0, got 0.0"),
    (4, float("inf"), "max lambda must be a finite number > 0, got inf"),
])
def test_lambda_grid_rejects_bad_sizes(num, max_lambda, message):
    with pytest.raises(ValueError, match=message):
        lambda_grid(num, max_lambda)


def test_sweep_json_round_trip_is_exact_and_strict(tmp_path):
    histories = reference_sweep([0.0, 1.0, 3.0])
    path = write_sweep(histories, tmp_path / "sweep.json")
    text = path.read_text()
    payload = json.loads(text, parse_constant=lambda c: pytest.fail(f"non-strict JSON: {c}"))
    assert payload["format"] == "weight-decay/sweep" and payload["lambdas"] == [0.0, 1.0, 3.0]
    again = read_sweep(path)
    assert len(again) == 3
    for original, restored in zip(histories, again, strict=True):
        assert restored.config == original.config
        for field in ("w", "b", "train_loss", "val_loss", "epoch_w", "epoch_b"):
            assert getattr(restored, field).tobytes() == getattr(original, field).tobytes()


def test_a_diverged_entry_is_written_as_null_and_read_back_marked(tmp_path):
    histories = reference_sweep([0.0, 2000.0], lr=0.1, max_epochs=60)
    assert histories[1].diverged and not histories[0].diverged
    path = write_sweep(histories, tmp_path / "sweep.json")
    assert "NaN" not in path.read_text() and "Infinity" not in path.read_text()
    again = read_sweep(path)
    assert again[1].diverged_epoch == histories[1].diverged_epoch
    assert np.isnan(again[1].train_loss[-1])


def test_read_results_tells_runs_from_sweeps(tmp_path):
    run = reference_sweep([1.0])[0]
    run.to_json(tmp_path / "run.json")
    kind, (again,) = read_results(tmp_path / "run.json")
    assert kind == "run" and again.val_loss.tobytes() == run.val_loss.tobytes()
    write_sweep([run, run], tmp_path / "sweep.json")
    kind, both = read_results(tmp_path / "sweep.json")
    assert kind == "sweep" and len(both) == 2


@pytest.mark.parametrize(("content", "message"), [
    ("{not json", "is not JSON"),
    ('{"format": "something else"}', "neither a weight-decay History nor a sweep"),
    ("[1, 2]", "neither a weight-decay History nor a sweep"),
    ('{"format": "weight-decay/sweep", "histories": []}', "not a non-empty list"),
    ('{"format": "weight-decay/sweep", "histories": [{"format": "weight-decay/history"}]}',
     r"histories\[0\]: not a weight-decay History: missing"),
    ('{"format": "weight-decay/history"}', "not a weight-decay History: missing"),
])
def test_reading_something_else_names_the_file(tmp_path, content, message):
    path = tmp_path / "other.json"
    path.write_text(content)
    with pytest.raises(ValueError, match=message) as info:
        read_results(path)
    assert "other.json" in str(info.value)


def test_a_run_is_not_a_sweep(tmp_path):
    reference_sweep([1.0])[0].to_json(tmp_path / "run.json")
    with pytest.raises(ValueError, match="is a single run, not a sweep"):
        read_sweep(tmp_path / "run.json")


def test_interrupted_sweep_write_leaves_the_previous_file(tmp_path, monkeypatch):
    path = tmp_path / "sweep.json"
    path.write_text("previous")

    def interrupted_fsync(fd):
        raise KeyboardInterrupt

    monkeypatch.setattr(os, "fsync", interrupted_fsync)
    with pytest.raises(KeyboardInterrupt):
        write_sweep(reference_sweep([1.0]), path)
    assert path.read_text() == "previous" and os.listdir(tmp_path) == ["sweep.json"]


def test_data_from_config_rebuilds_the_same_data():
    history = reference_sweep([1.0])[0]
    data = data_from_config(history.config)
    np.testing.assert_array_equal(data.X_train, SMALL.X_train)
    np.testing.assert_array_equal(data.y_val, SMALL.y_val)
    with pytest.raises(ValueError, match="lacks 'seed'"):
        data_from_config({k: v for k, v in history.config.items() if k != "seed"})


def test_write_sweep_needs_histories(tmp_path):
    with pytest.raises(InputTypeError, match="non-empty list of wd_core.History"):
        write_sweep([], tmp_path / "s.json")
    assert isinstance(reference_sweep([0.0])[0], History)
