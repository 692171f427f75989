"""The scoring service: score_decoder and score_encoder on known answers, and their records."""

import json
import math

import numpy as np
import pytest

from neuralsight.data import NeuralDataset
from neuralsight.metrics import (
    ReconstructionsError,
    save_reconstructions,
    score_decoder,
    score_encoder,
    shuffled_pairing,
    write_metrics_json,
)


def _coded(n_stimuli: int = 6, repeats: int = 3, n_test: int = 2) -> NeuralDataset:
    """Each trial's one response is its stimulus id; the last ``n_test`` stimuli are test."""
    rng = np.random.default_rng(0)
    stimuli = rng.random((n_stimuli, 1, 16, 16), dtype=np.float32)
    ids = np.repeat(np.arange(n_stimuli), repeats)
    split = np.where(ids >= n_stimuli - n_test, "test", "train")
    return NeuralDataset.from_arrays(ids[:, None].astype(np.float32), stimuli, ids, split=split)


class Oracle:
    """A decoder that reads the stimulus id from the response: perfect reconstructions."""

    def __init__(self, dataset: NeuralDataset) -> None:
        self.dataset = dataset

    def reconstruct(self, data, split: str = "test") -> np.ndarray:
        if isinstance(data, NeuralDataset):
            data = data.responses[data.trials(split)]
        ids = np.rint(np.asarray(data).reshape(len(data), -1)[:, 0]).astype(int)
        return self.dataset.stimuli[ids]


@pytest.mark.parametrize(("average_repeats", "n_images"), [(True, 2), (False, 6)])
def test_a_perfect_decoder_scores_perfectly_with_or_without_averaging(average_repeats, n_images):
    ds = _coded()
    scores = score_decoder(Oracle(ds), ds, "test", average_repeats=average_repeats)
    assert scores.image["ssim"] == pytest.approx(1.0)
    assert scores.image["pixcorr"] == pytest.approx(1.0)
    assert scores.image["mse"] == 0.0 and scores.image["psnr"] == math.inf
    assert len(scores.stimulus_id) == n_images and scores.split == "test"
    assert set(scores.stimulus_id) == {4, 5} and scores.meta == {"model": "Oracle"}
    assert scores.weights is None and scores.features is None


def test_averaging_repeats_of_given_reconstructions_cancels_their_errors():
    ds = _coded()
    target = ds.stimuli[4]
    noise = 0.1 * ((target > 0.1) & (target < 0.9))  # stays inside [0, 1]
    images = np.stack([target + noise, target - noise, ds.stimuli[5]])
    ids = [4, 4, 5]
    averaged = score_decoder(images, ds, None, stimulus_id=ids)
    single = score_decoder(images, ds, None, stimulus_id=ids, average_repeats=False)
    assert averaged.stimulus_id.tolist() == [4, 5] and single.stimulus_id.tolist() == ids
    assert averaged.image["mse"] == pytest.approx(0.0, abs=1e-12)
    assert single.image["mse"] == pytest.approx(2 * (noise**2).mean() / 3)


def test_the_mean_image_control_is_scored_on_the_same_targets():
    stimuli = np.stack([np.zeros((1, 8, 8)), np.ones((1, 8, 8)), np.zeros((1, 8, 8))])
    ds = NeuralDataset.from_arrays(
        np.zeros((3, 1), np.float32), stimuli.astype(np.float32), split=["train"] * 2 + ["test"]
    )
    scores = score_decoder(Oracle(ds), ds, mean_image_of=[0, 1, 1])
    control = scores.controls["mean_image"]
    assert control["image"]["mse"] == pytest.approx(0.25)
    assert control["image"]["psnr"] == pytest.approx(10 * math.log10(4))
    assert scores.image["mse"] == 0.0


@pytest.mark.parametrize(
    "ids",
    [np.arange(2), np.arange(50), np.repeat(np.arange(10), 3), np.array([7, 7, 3, 9, 3, 7])],
)
def test_shuffled_pairing_never_pairs_a_stimulus_with_its_own_reconstruction(ids):
    rows = shuffled_pairing(ids, seed=3)
    assert rows.shape == ids.shape and np.all(ids[rows] != ids)
    assert np.array_equal(rows, shuffled_pairing(ids, seed=3))


def test_shuffled_pairing_scores_at_chance_and_needs_two_stimuli():
    ds = _coded(n_stimuli=40, repeats=1, n_test=30)
    perfect = score_decoder(Oracle(ds), ds, features="pixels")
    test_ids = np.arange(10, 40)
    images = ds.stimuli[test_ids]
    shuffled = score_decoder(
        images[shuffled_pairing(test_ids)], ds, stimulus_id=test_ids, features="pixels"
    )
    assert perfect.features["twoway_pixel"] == 1.0
    assert shuffled.features["twoway_pixel"] < 0.7 and shuffled.image["mse"] > 0.1
    with pytest.raises(ValueError, match="2 or more distinct stimuli, found 1"):
        shuffled_pairing([4, 4])


def test_pixel_two_way_identification_needs_no_network():
    ds = _coded()
    scores = score_decoder(Oracle(ds), ds, features="pixels")
    assert scores.features == {"twoway_pixel": 1.0, "n_images": 2}
    assert scores.weights is None
    assert set(scores.row()) == {"mse", "psnr", "ssim", "pixcorr", "twoway_pixel", "colourfulness"}


def test_a_file_and_its_arrays_score_the_same(tmp_path):
    ds = _coded()
    images = np.random.default_rng(1).random((3, 1, 16, 16), dtype=np.float32)
    path = save_reconstructions(tmp_path / "r.npz", images, [5, 4, 5], {"seed": 3})
    from_file = score_decoder(path, ds, None, average_repeats=False)
    from_arrays = score_decoder(images, ds, None, stimulus_id=[5, 4, 5], average_repeats=False)
    assert from_file.image == from_arrays.image
    assert from_file.source == str(path) and from_file.meta == {"seed": 3}
    assert from_arrays.source is None and from_file.split is None


def test_the_record_round_trips_through_the_metrics_json(tmp_path):
    ds = _coded()
    scores = score_decoder(Oracle(ds), ds, average_repeats=False, mean_image_of=[0, 1])
    record = scores.as_dict()
    loaded = json.loads(write_metrics_json(tmp_path / "m.json", record).read_text())
    assert loaded["image"]["psnr"] is None  # infinite: strict JSON has none
    assert loaded["image"]["ssim"] == pytest.approx(record["image"]["ssim"])
    assert loaded["n_images"] == 6 and loaded["image_shape"] == [1, 16, 16]
    assert loaded["controls"]["mean_image"]["image"]["mse"] > 0
    assert set(loaded) == set(record)
    assert loaded["split"] == "test" and loaded["average_repeats"] is False


def test_bad_sources_are_refused_with_what_is_missing():
    ds = _coded()
    with pytest.raises(ReconstructionsError, match="need 'stimulus_id'"):
        score_decoder(ds.stimuli[:2], ds)
    with pytest.raises(ReconstructionsError, match=r"\[N\] must match"):
        score_decoder(ds.stimuli[:2], ds, stimulus_id=[0])
    with pytest.raises(ValueError, match="features must be"):
        score_decoder(ds.stimuli[4:], ds, stimulus_id=[4, 5], features="alexnet")


class LinearEncoder:
    """Predicts each unit as a fixed multiple of the mean pixel: the recorded responses."""

    weights = np.array([1.0, -2.0, 0.5], np.float32)

    def predict_responses(self, images) -> np.ndarray:
        mean = np.asarray(images).mean(axis=(1, 2, 3))
        return (mean[:, None] * self.weights)[:, :, None].astype(np.float32)


@pytest.mark.parametrize("repeats", [1, 3])
def test_a_perfect_encoder_scores_r_one(repeats):
    stimuli = np.random.default_rng(2).random((10, 1, 8, 8), dtype=np.float32)
    ids = np.repeat(np.arange(10), repeats)
    responses = LinearEncoder().predict_responses(stimuli)[ids]
    ds = NeuralDataset.from_arrays(
        responses, stimuli, ids, split=np.where(ids < 4, "train", "test")
    )
    scores = score_encoder(LinearEncoder(), ds, "test")
    assert scores.metrics["mean_r"] == pytest.approx(1.0)
    assert scores.n_stimuli == 6 and scores.repeats == repeats and scores.split == "test"
    assert ("mean_feve" in scores.metrics) == (repeats > 1)
    if repeats > 1:
        assert scores.metrics["mean_feve"] == pytest.approx(1.0)
    assert scores.as_dict()["mean_r"] == scores.metrics["mean_r"]
    every = score_encoder(LinearEncoder(), ds, split=None)
    assert every.n_stimuli == 10 and every.metrics["mean_r"] == pytest.approx(1.0)
