"""The reconstructions file, scoring it against a dataset, and the metrics JSON."""

import json
import math

import numpy as np
import pytest

from conftest import make_toy_dataset
from neuralsight.data import NeuralDataset
from neuralsight.metrics import (
    ReconstructionsError,
    load_reconstructions,
    save_reconstructions,
    score_decoder,
    write_metrics_json,
)


def evaluated(path, dataset, split=None, **kwargs) -> dict:
    """What ``neuralsight evaluate`` reports: every reconstruction in the file, scored.

    The toy files here answer stimuli of any split (``split=None``); the checks that a
    file covers its split are tested on their own below.
    """
    return score_decoder(path, dataset, split, average_repeats=False, **kwargs).as_dict()


def test_reconstructions_round_trip(tmp_path):
    images = np.random.default_rng(0).random((3, 1, 8, 8)).astype(np.float32)
    path = save_reconstructions(tmp_path / "recon.npz", images, np.array([4, 0, 4]), {"seed": 7})
    loaded, ids, meta = load_reconstructions(path)
    assert np.array_equal(loaded, images)
    assert ids.dtype == np.int64 and ids.tolist() == [4, 0, 4]
    assert meta == {"seed": 7}
    assert [p.name for p in tmp_path.iterdir()] == ["recon.npz"]


def test_wrong_shapes_are_refused_with_the_field_named(tmp_path):
    with pytest.raises(
        ReconstructionsError, match=r"field 'images' must have shape \[N, C, H, W\]"
    ):
        save_reconstructions(tmp_path / "r.npz", np.zeros((3, 8, 8)), [0, 1, 2])
    with pytest.raises(ReconstructionsError, match=r"field 'stimulus_id' must have shape \[N\]"):
        save_reconstructions(tmp_path / "r.npz", np.zeros((3, 1, 8, 8)), [0, 1])
    assert list(tmp_path.iterdir()) == []


def test_loading_a_foreign_file_names_the_file_and_field(tmp_path):
    foreign = tmp_path / "foreign.npz"
    np.savez(foreign, images=np.zeros((2, 1, 4, 4), np.float32))
    with pytest.raises(ReconstructionsError, match=r"foreign\.npz: not a neuralsight .*'format'"):
        load_reconstructions(foreign)
    text = tmp_path / "text.npz"
    text.write_text("hello")
    with pytest.raises(ReconstructionsError, match=r"text\.npz: not a reconstructions \.npz"):
        load_reconstructions(text)
    with pytest.raises(FileNotFoundError, match=r"absent\.npz"):
        load_reconstructions(tmp_path / "absent.npz")


def test_perfect_reconstructions_evaluate_perfectly_from_a_lazy_file(tmp_path):
    dataset_path = make_toy_dataset(n_stimuli=10, size=16).save(tmp_path / "toy.h5")
    lazy = NeuralDataset.open(dataset_path)
    ids = np.array([7, 2, 7, 5])
    recon = save_reconstructions(
        tmp_path / "r.npz", np.asarray(lazy.stimuli[[2, 5, 7]])[[2, 0, 2, 1]], ids
    )
    result = evaluated(recon, dataset_path)
    assert result["image"]["mse"] == 0.0
    assert result["image"]["ssim"] == pytest.approx(1.0)
    assert result["n_images"] == 4
    assert result["weights"] is None
    assert result["target_resized_from"] is None


def test_features_add_alexnet_metrics_colourfulness_and_provenance(tmp_path):
    dataset = make_toy_dataset(n_stimuli=4, size=16)
    noisy = np.clip(dataset.stimuli + 0.2, 0, 1.5).astype(np.float32)
    recon = save_reconstructions(tmp_path / "r.npz", noisy, np.arange(4))
    result = evaluated(recon, dataset, features=True, weights="random", device="cpu")
    assert result["weights"] == "random" == result["features"]["weights"]
    assert 0 < result["clipped_fraction"] < 1
    assert result["colourfulness"] == {"reconstructions": 0.0, "stimuli": 0.0}
    assert -1 <= result["features"]["corr_conv5"] <= 1


def test_smaller_reconstructions_are_refused_or_scored_against_resized_stimuli(tmp_path):
    dataset = make_toy_dataset(n_stimuli=3, size=16)
    recon = save_reconstructions(
        tmp_path / "r.npz", np.full((3, 1, 8, 8), 0.5, np.float32), [0, 1, 2]
    )
    with pytest.raises(ReconstructionsError, match=r"r\.npz: field 'images' is 8x8 .* are 16x16"):
        evaluated(recon, dataset)
    result = evaluated(recon, dataset, resize=True)
    assert result["target_resized_from"] == [16, 16]
    assert result["image_shape"] == [1, 8, 8]


def test_ids_outside_the_dataset_and_channel_mismatch_are_errors(tmp_path):
    dataset = make_toy_dataset(n_stimuli=3, size=8)
    recon = save_reconstructions(tmp_path / "r.npz", np.zeros((1, 1, 8, 8)), [3])
    with pytest.raises(ReconstructionsError, match=r"r\.npz: field 'stimulus_id' .* 3 stimuli"):
        evaluated(recon, dataset)
    rgb = save_reconstructions(tmp_path / "rgb.npz", np.zeros((1, 3, 8, 8)), [0])
    with pytest.raises(ReconstructionsError, match="3 channel"):
        evaluated(rgb, dataset)


def test_metrics_json_is_strict_and_atomic(tmp_path):
    path = write_metrics_json(
        tmp_path / "out" / "metrics.json",
        {"image": {"psnr": math.inf, "mse": np.float32(0.5)}, "ids": np.arange(2)},
    )
    assert json.loads(path.read_text()) == {"image": {"psnr": None, "mse": 0.5}, "ids": [0, 1]}
    assert [p.name for p in path.parent.iterdir()] == ["metrics.json"]
