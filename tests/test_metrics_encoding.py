"""Encoding-model metrics: per-unit correlation, noise ceiling, explainable variance, FEVE."""

import numpy as np
import pytest

from neuralsight.metrics.encoding import (
    correlation_ceiling,
    encoding_metrics,
    explainable_variance,
    feve,
    per_unit_correlation,
    repeats_by_stimulus,
    split_half_reliability,
)


def simulated_repeats(n_repeats=8, n_stimuli=200, n_units=20, noise=0.5, seed=0):
    rng = np.random.default_rng(seed)
    rate = rng.normal(size=(n_stimuli, n_units))
    return rate, rate + noise * rng.normal(size=(n_repeats, n_stimuli, n_units))


def test_perfect_prediction_has_r_one():
    recorded = np.random.default_rng(0).normal(size=(100, 5))
    assert per_unit_correlation(recorded, recorded) == pytest.approx(np.ones(5))


def test_shuffled_prediction_has_r_near_zero():
    rng = np.random.default_rng(1)
    recorded = rng.normal(size=(2000, 10))
    shuffled = recorded[rng.permutation(2000)]
    assert np.abs(per_unit_correlation(shuffled, recorded)).max() < 0.1


def test_constant_prediction_has_r_zero():
    recorded = np.random.default_rng(2).normal(size=(30, 3))
    assert per_unit_correlation(np.ones((30, 3)), recorded).tolist() == [0.0, 0.0, 0.0]


def test_noise_ceiling_of_pure_noise_is_near_zero():
    noise = np.random.default_rng(3).normal(size=(10, 300, 40))
    assert abs(split_half_reliability(noise).mean()) < 0.05
    assert abs(explainable_variance(noise).mean()) < 0.05


def test_noise_ceiling_of_reliable_units_is_high_and_orders_by_noise():
    _, clean = simulated_repeats(noise=0.2)
    _, noisy = simulated_repeats(noise=2.0)
    assert split_half_reliability(clean).mean() > 0.95
    assert split_half_reliability(noisy).mean() < split_half_reliability(clean).mean()
    assert (correlation_ceiling(clean) <= 1).all()


def test_feve_is_one_for_the_true_rate_and_zero_for_a_constant_at_the_mean():
    rate, repeats = simulated_repeats()
    assert feve(rate, repeats) == pytest.approx(np.ones(20), abs=0.05)
    grand_mean = np.broadcast_to(repeats.mean(axis=(0, 1)), rate.shape)
    assert feve(grand_mean, repeats) == pytest.approx(np.zeros(20), abs=0.05)


def test_encoding_metrics_with_and_without_repeats():
    rate, repeats = simulated_repeats(noise=1.0)
    single = encoding_metrics(rate, repeats[0])
    assert set(single) == {"mean_r", "median_r", "n_units"}
    full = encoding_metrics(rate, repeats)
    assert full["n_units"] == 20
    assert full["mean_r"] < full["mean_ceiling"] + 0.05
    assert full["mean_normalised_r"] == pytest.approx(1.0, abs=0.1)
    assert full["mean_feve"] == pytest.approx(1.0, abs=0.1)


def test_repeats_by_stimulus_groups_trials_and_drops_single_presentations():
    responses = np.arange(14.0).reshape(7, 2)
    repeats, ids = repeats_by_stimulus(responses, [5, 2, 5, 2, 9, 2, 5])
    assert ids.tolist() == [2, 5]
    assert repeats.shape == (3, 2, 2)
    assert repeats[:, 0, 0].tolist() == [2.0, 6.0, 10.0]


def test_shape_errors_name_the_argument():
    with pytest.raises(ValueError, match=r"'predicted' and 'recorded' must have the same shape"):
        per_unit_correlation(np.zeros((4, 2)), np.zeros((4, 3)))
    with pytest.raises(ValueError, match=r"'repeats' needs at least 2 repeats"):
        split_half_reliability(np.zeros((1, 4, 2)))
