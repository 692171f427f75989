"""Simulations streamed to disk: chunking and workers never change the file; memory stays bounded."""

import json
import sys

import numpy as np
import pytest

from conftest import run_under_memory_cap
from neuralsight.cli import main
from neuralsight.data import NeuralDataset
from neuralsight.data.sources import make_stimuli
from neuralsight.simulate.chunked import simulate_to_file
from neuralsight.simulate.retina import simulate_retina

FIELDS = ("responses", "stimuli", "stimulus_id", "split", "bin_edges_ms")
CAPPED_IMPORTS = """
from neuralsight.data import NeuralDataset
from neuralsight.simulate.chunked import simulate_to_file
"""

CAPPED_SIMULATION = r"""
trial_bytes = 960 * 301 * 4
repeats_test, n_test = 10, 20
n_train = int(1.1 * cap / trial_bytes) - n_test * repeats_test
simulate_to_file(
    path, simulator="cortex", source="digits", n_train=n_train, n_test=n_test, size=32,
    seed=4, repeats_test=repeats_test, workers=2, progress=False,
)
ds = NeuralDataset.open(path)
print(json.dumps({
    "cap": cap,
    "cap_holds": cap_holds,
    "file_bytes": os.path.getsize(path),
    "n_train": n_train,
    "shape": list(ds.responses.shape),
    "n_stimuli": ds.n_stimuli,
    "splits": ds.summary()["splits"],
    "last_trial_finite": bool(np.isfinite(ds.responses[-1]).all()),
    "last_trial_varies": bool(np.ptp(ds.responses[-1]) > 0),
}))
"""


def _arrays(path) -> NeuralDataset:
    return NeuralDataset.open(path, lazy=False)


def _assert_same_file(a: NeuralDataset, b: NeuralDataset) -> None:
    for name in FIELDS:
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name), err_msg=name)
    assert a.units.equals(b.units) and a.meta == b.meta


@pytest.mark.parametrize(
    ("simulator", "source", "extra"),
    [("retina", "natural", {"n_cells": 30}), ("cortex", "digits", {})],
)
def test_chunks_and_workers_never_change_the_file(tmp_path, simulator, source, extra):
    common = {
        "simulator": simulator,
        "source": source,
        "n_train": 70,
        "n_test": 9,
        "size": 32,
        "seed": 7,
        "repeats_test": 3,
        "progress": False,
        **extra,
    }
    whole = _arrays(simulate_to_file(tmp_path / "whole.h5", chunk=1000, workers=1, **common))
    for chunk, workers in ((5, 1), (40, 2)):
        path = simulate_to_file(tmp_path / f"c{chunk}.h5", chunk=chunk, workers=workers, **common)
        _assert_same_file(whole, _arrays(path))
    assert whole.n_trials == 70 + 9 * 3 and whole.meta["source"] == source
    train = make_stimuli(source, 70, size=32, seed=7)
    np.testing.assert_array_equal(whole.stimuli[:70], train)


def test_the_stream_matches_the_in_memory_retina(tmp_path):
    train = make_stimuli("digits", 50, size=16, seed=2)
    test = make_stimuli("digits", 6, size=16, seed=2, split="test")
    memory = simulate_retina(train, test, n_cells=20, seed=2, repeats_test=2)
    path = simulate_to_file(
        tmp_path / "s.h5", source="digits", n_train=50, n_test=6, size=16, n_cells=20, seed=2,
        repeats_test=2, chunk=8, progress=False,
    )  # fmt: skip
    stream = _arrays(path)
    np.testing.assert_array_equal(stream.stimuli, memory.stimuli)
    np.testing.assert_array_equal(stream.stimulus_id, memory.stimulus_id)
    assert (stream.responses == memory.responses).mean() > 0.99  # rates differ by rounding only
    assert stream.meta == {**memory.meta, "source": "digits"}


def test_cli_simulate_takes_chunk_and_workers(tmp_path, capsys):
    out = tmp_path / "cli.h5"
    args = ["simulate", "--source", "digits", "--n-train", "40", "--n-test", "8", "--size", "16"]
    main([*args, "--cells", "10", "--chunk", "16", "--workers", "2", "--out", str(out)])
    printed = json.loads(capsys.readouterr().out)
    assert printed["n_trials"] == 48 and printed["meta"]["source"] == "digits"
    with pytest.raises(ValueError, match="parameter 'chunk' must be a positive integer"):
        main([*args, "--chunk", "0", "--out", str(tmp_path / "bad.h5")])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cli.h5"]


@pytest.mark.slow
@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="RLIMIT_DATA needs Linux")
def test_simulates_a_file_larger_than_the_memory_cap(tmp_path):
    path = tmp_path / "larger_than_memory.h5"
    result = run_under_memory_cap(CAPPED_IMPORTS, CAPPED_SIMULATION, path)
    n_trials = result["n_train"] + 20 * 10
    assert result["shape"] == [n_trials, 960, 301]
    assert result["n_stimuli"] == result["n_train"] + 20
    assert result["splits"] == {"train": result["n_train"], "test": 200}
    assert result["last_trial_finite"] and result["last_trial_varies"]
