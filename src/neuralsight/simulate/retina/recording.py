"""`simulate_retina`: a retinal recording of train and test images, in memory."""

from __future__ import annotations

from typing import Any

import numpy as np

from neuralsight.data.dataset import NeuralDataset
from neuralsight.simulate.base import check_repeats, trial_layout, validate_images
from neuralsight.simulate.retina.simulator import retina_from_preset


def simulate_retina(
    train_images: np.ndarray,
    test_images: np.ndarray,
    preset: str = "realistic",
    n_cells: int = 300,
    repeats_train: int = 1,
    repeats_test: int = 1,
    seed: int = 0,
    **overrides: Any,
) -> NeuralDataset:
    """Simulate a retinal recording of train and test images as a `NeuralDataset`.

    Parameters
    ----------
    train_images, test_images
        ``[N, C, H, W]`` in [0, 1], the same ``C, H, W`` for both.
    preset
        A key of `PRESETS`: ``"realistic"`` (subunit cells) or ``"ln"``.
    n_cells
        Number of cells.
    repeats_train, repeats_test
        Trials per train and test image.
    seed
        Seed of the mosaic and of the spikes (train and test draw independent streams).
    **overrides
        Any other `RetinaSimulator` parameter, overriding the preset.

    Returns
    -------
    NeuralDataset
        Stimuli are the train then the test images; trials are stimulus-major within each
        split (train trials first); units are the mosaic table; ``meta`` records the
        simulator, preset, seed, version and all parameters.

    Examples
    --------
    >>> import numpy as np
    >>> images = np.random.default_rng(0).random((5, 1, 12, 12))
    >>> ds = simulate_retina(images[:4], images[4:], n_cells=10, repeats_test=3)
    >>> ds.n_trials, ds.n_units, ds.split.tolist().count("test")
    (7, 10, 3)
    """
    train = validate_images(train_images, "train_images")
    test = validate_images(test_images, "test_images")
    if train.shape[1:] != test.shape[1:]:
        raise ValueError(
            f"'test_images' must match 'train_images' in [C, H, W] = {train.shape[1:]}, "
            f"found {test.shape[1:]}"
        )
    check_repeats(repeats_train=repeats_train, repeats_test=repeats_test)
    retina = retina_from_preset(train.shape[2:], seed, preset, n_cells, **overrides)
    repeats = {"train": repeats_train, "test": repeats_test}
    sampler = retina.sampler(repeats)
    stimulus_id, split = trial_layout({"train": len(train), "test": len(test)}, repeats)
    responses = np.concatenate(
        [
            sampler.in_order(retina.rates(images), split)
            for split, images in (("train", train), ("test", test))
        ]
    )
    return NeuralDataset(
        responses=responses,
        stimuli=np.concatenate([train, test]),
        stimulus_id=stimulus_id,
        split=split,
        units=retina.units.copy(),
        bin_edges_ms=retina.bin_edges_ms,
        meta=retina.meta(repeats),
    )
