"""History: exact float64 JSON round trip, strict JSON for NaN/inf, atomic writes."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest

from wd_core import History, SyntheticData, reference
from wd_core.errors import MissingPathError


def test_json_round_trip_keeps_float64_exactly(tmp_path):
    data = SyntheticData(num_train=10, num_val=5, num_inputs=6, batch_size=3, seed=2)
    history = reference.train(data, lambd=3.0, lr=0.01, max_epochs=4, epoch_params=True)
    path = history.to_json(tmp_path / "run.json")
    again = History.from_json(path)
    for field in ("w", "b", "train_loss", "val_loss", "epoch_w", "epoch_b"):
        original, restored = getattr(history, field), getattr(again, field)
        assert restored.shape == original.shape and restored.dtype == np.float64
        assert original.tobytes() == restored.tobytes(), field
    assert again.config == history.config
    assert again.l2_penalty == history.l2_penalty and again.l2_norm == history.l2_norm
    written = json.loads(path.read_text())
    assert written["l2_penalty"] == history.l2_penalty and written["l2_norm"] == history.l2_norm


def test_nan_and_inf_are_written_as_null_and_the_history_says_why(tmp_path):
    data = SyntheticData()
    history = reference.train(data, lambd=0.0, lr=10.0, max_epochs=30, epoch_params=True)
    assert history.diverged
    text = history.to_json(tmp_path / "diverged.json").read_text()
    assert "NaN" not in text and "Infinity" not in text
    payload = json.loads(text, parse_constant=lambda c: pytest.fail(f"non-strict JSON: {c}"))
    assert payload["diverged"] is True and payload["diverged_epoch"] == history.diverged_epoch
    assert payload["train_loss"][-1] is None
    again = History.from_json(tmp_path / "diverged.json")
    assert np.isnan(again.train_loss[-1]) and again.diverged_epoch == history.diverged_epoch


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("{not json", "is not JSON"),
        ('{"a": 1}', "not a weight-decay History"),
        ('[1, 2]', "not a weight-decay History"),
    ],
)
def test_reading_something_else_is_a_clear_error(tmp_path, content, message):
    path = tmp_path / "other.json"
    path.write_text(content)
    with pytest.raises(ValueError, match=message):
        History.from_json(path)


def test_write_into_missing_folder_names_it(tmp_path):
    history = reference.train(SyntheticData(num_train=4, num_inputs=2, batch_size=2),
                              lambd=1.0, lr=0.1, max_epochs=1, epoch_params=True)
    with pytest.raises(MissingPathError, match="does not exist"):
        history.to_json(tmp_path / "missing" / "run.json")


def test_interrupted_write_leaves_the_previous_file(tmp_path, monkeypatch):
    history = reference.train(SyntheticData(num_train=4, num_inputs=2, batch_size=2),
                              lambd=1.0, lr=0.1, max_epochs=1, epoch_params=True)
    path = tmp_path / "run.json"
    path.write_text("previous")

    def interrupted_fsync(fd):
        raise KeyboardInterrupt

    monkeypatch.setattr(os, "fsync", interrupted_fsync)
    with pytest.raises(KeyboardInterrupt):
        history.to_json(path)
    assert path.read_text() == "previous"
    assert os.listdir(tmp_path) == ["run.json"]


def test_written_files_get_the_permissions_open_would_give(tmp_path):
    from wd_core.atomic import write_bytes_atomic, write_text_atomic

    umask = os.umask(0o027)
    try:
        text = write_text_atomic(tmp_path / "a.json", "{}\n")
        data = write_bytes_atomic(tmp_path / "b.png", b"\x89PNG")
    finally:
        os.umask(umask)
    assert (text.read_text(), data.read_bytes()) == ("{}\n", b"\x89PNG")
    assert oct(text.stat().st_mode & 0o777) == oct(data.stat().st_mode & 0o777) == oct(0o640)
    text.chmod(0o600)  # a file that is replaced keeps its permissions, as with open("w")
    write_text_atomic(text, "[]\n")
    assert text.read_text() == "[]\n" and oct(text.stat().st_mode & 0o777) == oct(0o600)
