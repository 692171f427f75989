"""Every registered simulator passes the same protocol checks: a simulator is tested the day
it registers, with no new test code."""

import numpy as np
import pytest

from neuralsight import __version__
from neuralsight.simulate import SIMULATORS, Simulator

SIZE = 32
SMALL = {
    "retina": {"n_cells": 12},
    "cortex": {"arrays": {"V1": 1, "IT": 1}, "electrodes_per_array": 3},
}


def _build(name: str, seed: int = 3) -> Simulator:
    return SIMULATORS.get(name)(SIZE, seed=seed, **SMALL[name])


def _images(n: int = 4, channels: int = 1) -> np.ndarray:
    return np.random.default_rng(0).random((n, channels, SIZE, SIZE)).astype(np.float32)


def test_every_simulator_has_small_options():
    assert set(SIMULATORS.names()) == set(SMALL)


@pytest.mark.parametrize("name", SIMULATORS.names())
def test_implements_the_protocol(name):
    assert isinstance(_build(name), Simulator)


@pytest.mark.parametrize("name", SIMULATORS.names())
@pytest.mark.parametrize("channels", [1, 3])
def test_rates_and_responses_have_the_protocol_shapes(name, channels):
    sim = _build(name)
    images = _images(channels=channels)
    rates = sim.rates(images)
    assert rates.shape == (4, sim.n_units) and rates.dtype == np.float32
    assert np.isfinite(rates).all()
    trials = sim.responses(images, repeats=2, seed=5)
    assert trials.shape == (8, sim.n_units, sim.n_bins) and trials.dtype == np.float32
    assert sim.bin_edges_ms.shape == (sim.n_bins + 1,)
    assert np.all(np.diff(sim.bin_edges_ms) > 0)
    assert sim.chunk_trials >= 1


@pytest.mark.parametrize("name", SIMULATORS.names())
def test_units_table_has_one_row_per_unit_with_id_and_area(name):
    units = _build(name).units
    assert {"unit_id", "area"} <= set(units.columns)
    assert units["unit_id"].tolist() == list(range(len(units)))
    assert len(units) == _build(name).n_units


@pytest.mark.parametrize("name", SIMULATORS.names())
def test_meta_records_simulator_seed_and_version(name):
    sim = _build(name, seed=11)
    meta = sim.meta()
    assert meta["simulator"] == name and meta["seed"] == 11
    assert meta["neuralsight_version"] == __version__
    recording = sim.meta({"train": 1, "test": 3})
    assert recording["repeats_train"] == 1 and recording["repeats_test"] == 3
    assert set(meta) < set(recording)


@pytest.mark.parametrize("name", SIMULATORS.names())
def test_deterministic_from_the_seed(name):
    images = _images()
    a, b, other = _build(name, seed=2), _build(name, seed=2), _build(name, seed=9)
    np.testing.assert_array_equal(a.rates(images), b.rates(images))
    np.testing.assert_array_equal(a.responses(images, 2, seed=4), b.responses(images, 2, seed=4))
    assert not np.array_equal(a.responses(images, 2, seed=4), a.responses(images, 2, seed=6))
    assert not np.array_equal(a.rates(images), other.rates(images))
    assert a.units.equals(b.units)


@pytest.mark.parametrize("name", SIMULATORS.names())
def test_sampler_in_two_steps_is_deterministic_and_shaped(name):
    images = _images()
    repeats = {"train": 2, "test": 1}
    made = []
    for _ in range(2):
        sim = _build(name)
        sampler = sim.sampler(repeats)
        values = sampler.per_stimulus(sim.rates(images), "train", 0)
        made.append(sampler.in_order(values, "train"))
    assert made[0].shape == (8, sim.n_units, sim.n_bins)
    np.testing.assert_array_equal(made[0], made[1])
