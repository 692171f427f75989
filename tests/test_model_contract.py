"""Every registered decoder and encoder keeps the same small surface (after CEBRA's tests).

Each model is built from keyword arguments, maps a batch to the right shape, decodes or
encodes a `NeuralDataset`, trains a step, and comes back from a checkpoint (saved by the
Trainer, loaded with ``weights_only=True`` and onto the CPU) giving the same outputs.
"""

import functools
import importlib
import tempfile
from pathlib import Path

import lightning as L
import numpy as np
import pandas as pd
import pytest
import torch
import yaml

from neuralsight.data import NeuralDataModule, NeuralDataset
from neuralsight.models import DECODERS, ENCODERS
from neuralsight.models.decoders import Decoder
from neuralsight.train import fit, train_feature_prior

N_UNITS, N_BINS, IMAGE_SHAPE = 6, 2, (1, 16, 16)
CONFIGS = sorted(Path(__file__).parents[1].glob("configs/*.yaml"))
UNITS = {
    "area": ["V1"] * 3 + ["IT"] * 3,
    "array": ["0", "0", "0", "1", "1", "1"],
    "rf_x": [-0.5, 0.0, 0.5, -0.3, 0.0, 0.3],
    "rf_y": [0.0, 0.4, -0.4, 0.2, -0.2, 0.0],
    "rf_sigma": [0.2, 0.2, 0.2, 0.5, 0.5, 0.5],
}
BIN_EDGES_MS = [25.0, 100.0, 175.0]
SIZES = {"n_inputs": N_UNITS * N_BINS, "image_shape": IMAGE_SHAPE}
TINY = {
    "ridge": SIZES,
    "sid": SIZES,
    "improved_sid": {**SIZES, "base_channels": 4, "depth": 2},
    "monkeysee": {
        **SIZES,
        **UNITS,
        "bin_edges_ms": BIN_EDGES_MS,
        "feature_weight": 0.0,
        "base_channels": 4,
        "depth": 2,
        "discriminator_channels": 4,
        "discriminator_layers": 2,
        "vgg_input_size": None,
    },
    "flig": {
        **SIZES,
        "n_bins": N_BINS,
        "n_features": 8,
        "cae_channels": (4, 8),
        "flow_blocks": 2,
        "flow_hidden": 16,
    },
    "video_sid": {
        "n_units": N_UNITS,
        "image_shape": IMAGE_SHAPE,
        "context": N_BINS,
        "base_channels": 4,
        "depth": 2,
    },
    "feature_ridge": {**SIZES, "prior": None},
    "encoder_inversion": {**SIZES, "prior": None, "encoder": None, "steps": 2},
    "ln": {**SIZES, "n_bins": N_BINS},
    "cnn": {**SIZES, "n_bins": N_BINS, "channels": 4, "kernels": (5, 3)},
    "pretrained_core": {
        **SIZES,
        "n_bins": N_BINS,
        "layer": "conv2",
        "weights": "random",
        "feature_size": 64,
    },
}
MODELS = [("decoder", name) for name in DECODERS] + [("encoder", name) for name in ENCODERS]


def tiny_dataset(n: int = 16) -> NeuralDataset:
    """Responses that depend on the images, 4 of 16 trials held out."""
    rng = np.random.default_rng(0)
    stimuli = rng.random((n, *IMAGE_SHAPE), dtype=np.float32)
    weights = rng.normal(size=(int(np.prod(IMAGE_SHAPE)), N_UNITS * N_BINS)) / 16
    responses = np.abs(stimuli.reshape(n, -1) @ weights).reshape(n, N_UNITS, N_BINS)
    return NeuralDataset.from_arrays(
        responses.astype(np.float32),
        stimuli,
        units=pd.DataFrame({"unit_id": np.arange(N_UNITS), **UNITS}),
        bin_edges_ms=BIN_EDGES_MS,
        split=np.where(np.arange(n) < n - 4, "train", "test"),
    )


@functools.cache
def tiny_prior() -> str:
    """A `FeaturePrior` for `IMAGE_SHAPE` images (random AlexNet, one epoch), made once."""
    images = np.random.default_rng(0).random((8, *IMAGE_SHAPE), dtype=np.float32)
    folder = Path(tempfile.mkdtemp(prefix="tiny_prior_"))
    train_feature_prior(
        images,
        weights="random",
        feature_size=64,
        width=4,
        epochs=1,
        out_dir=folder,
        progress=False,
    )
    return str(folder / "checkpoints" / "feature_prior.ckpt")


@functools.cache
def tiny_encoder() -> str:
    """A `pretrained_core` encoder of `tiny_dataset` (random AlexNet, one epoch), made once."""
    folder = Path(tempfile.mkdtemp(prefix="tiny_encoder_"))
    encoder = ENCODERS.get("pretrained_core")(**TINY["pretrained_core"])
    fit(
        encoder,
        NeuralDataModule(dataset=tiny_dataset(), batch_size=8),
        max_epochs=1,
        out_dir=folder,
        name="encoder",
        progress=False,
        accelerator="cpu",
    )
    return str(folder / "checkpoints" / "encoder.ckpt")


def build(kind: str, name: str) -> L.LightningModule:
    registry = DECODERS if kind == "decoder" else ENCODERS
    arguments = TINY[name] | ({"prior": tiny_prior()} if "prior" in TINY[name] else {})
    arguments |= {"encoder": tiny_encoder()} if "encoder" in TINY[name] else {}
    torch.manual_seed(0)
    return registry.get(name)(**arguments)


def outputs(kind: str, model: L.LightningModule, ds: NeuralDataset) -> np.ndarray:
    """What the model is for, on the test split: reconstructions or predicted responses."""
    if kind == "decoder":
        return model.reconstruct(ds, split="test")
    return model.predict_responses(ds, split="test")


def trained_checkpoint(kind: str, name: str, path: Path) -> tuple[L.LightningModule, Path]:
    """A model trained for one step, and the checkpoint its Trainer saved."""
    model = build(kind, name)
    trainer = L.Trainer(
        accelerator="cpu",
        max_steps=1,
        logger=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        enable_checkpointing=False,
        num_sanity_val_steps=0,
    )
    trainer.fit(model, NeuralDataModule(dataset=tiny_dataset(), batch_size=8, val_fraction=0.25))
    trainer.save_checkpoint(path)
    return model, path


def test_every_model_has_tiny_arguments():
    assert set(TINY) == set(DECODERS.names()) | set(ENCODERS.names())


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.stem)
def test_every_config_names_a_registered_model(path):
    module, _, name = yaml.safe_load(path.read_text())["model"]["class_path"].rpartition(".")
    named = getattr(importlib.import_module(module), name)
    registered = [*(DECODERS.get(n) for n in DECODERS), *(ENCODERS.get(n) for n in ENCODERS)]
    assert any(named is cls for cls in registered)


@pytest.mark.parametrize(("kind", "name"), MODELS)
def test_forward_maps_a_batch_to_the_right_shape(kind, name):
    model = build(kind, name).eval()
    responses = torch.rand(3, N_UNITS, N_BINS)
    images = torch.rand(3, *IMAGE_SHAPE)
    if kind == "decoder":
        assert model(responses).shape == (3, *IMAGE_SHAPE)
    else:
        encode = model.encode if isinstance(model, Decoder) else model
        assert encode(images).shape == (3, N_UNITS, N_BINS)


@pytest.mark.parametrize(("kind", "name"), MODELS)
def test_a_dataset_split_decodes_or_encodes_in_batches(kind, name):
    ds = tiny_dataset()
    out = outputs(kind, build(kind, name), ds)
    expected = IMAGE_SHAPE if kind == "decoder" else (N_UNITS, N_BINS)
    assert out.shape == (4, *expected) and out.dtype == np.float32
    assert np.isfinite(out).all()
    if kind == "decoder":
        assert out.min() >= 0 and out.max() <= 1


@pytest.mark.parametrize(("kind", "name"), MODELS)
def test_a_trainer_checkpoint_restores_the_same_outputs(kind, name, tmp_path):
    model, path = trained_checkpoint(kind, name, tmp_path / f"{name}.ckpt")
    ds = tiny_dataset()
    restored = type(model).load_from_checkpoint(path, weights_only=True)
    np.testing.assert_allclose(outputs(kind, restored, ds), outputs(kind, model, ds), atol=1e-5)
    on_cpu = type(model).load_from_checkpoint(path, map_location="cpu", weights_only=True)
    assert {p.device.type for p in on_cpu.parameters()} == {"cpu"}


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device to save from")
@pytest.mark.parametrize(("kind", "name"), MODELS)
def test_a_checkpoint_saved_on_cuda_loads_on_the_cpu(kind, name, tmp_path):
    ds = tiny_dataset()
    model = build(kind, name)
    expected = outputs(kind, model, ds)
    path = tmp_path / f"{name}.ckpt"
    torch.save(
        {
            "state_dict": model.cuda().state_dict(),
            "hyper_parameters": dict(model.hparams),
            "pytorch-lightning_version": L.__version__,
        },
        path,
    )
    restored = type(model).load_from_checkpoint(path, map_location="cpu", weights_only=True)
    assert {p.device.type for p in restored.parameters()} == {"cpu"}
    np.testing.assert_allclose(outputs(kind, restored, ds), expected, atol=1e-4)
