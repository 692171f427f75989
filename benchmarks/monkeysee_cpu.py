"""MonkeySee on a CPU: spatial, end-to-end and dense-baseline models next to ridge, measured.

A small, complete run of the MonkeySee checks (Le et al., NeurIPS 2024) that fits in about
15 minutes on two CPU cores:

1. **Data.** Colour crops of scikit-image's photographs (``natural``; test crops come from
   photographs never used in training), ``--size`` pixels square, shown to the simulated
   V1/V4/IT Utah arrays (`neuralsight.simulate.cortex`, 7 + 4 + 4 arrays of
   ``--electrodes`` electrodes, placed as in the TVSD monkeys, V1 and V4 in the lower
   visual field near the fovea, or with ``--layout spread`` spread over the image) in
   ``mode="window"`` (one per-area window mean per electrode: V1 25-125, V4 50-150, IT
   75-175 ms), ``--n-train`` training images shown once and ``--n-test`` test images shown
   ``--repeats-test`` times (averaged).
2. **Models.** `MonkeySee` with ``mapping`` ``spatial`` (fixed inverse retinotopic map, one
   channel per array), ``end_to_end`` (learned Gaussian RF per electrode, initialised from
   the true ones) and ``dense`` (the paper's baseline without RF mapping), each trained for
   ``--batches`` batches of ``--batch-size`` (8, the reference's) with the paper's losses
   (0.01 adversarial, ``--feature-weight`` 1.0 VGG19 features, 0.5 L1) and Adam (beta1
   0.5) at ``--lr`` 1e-3 rather than the paper's 2e-4 (chosen on images held out of the
   training set, never on the test split: it learns faster in a short run), generator
   width ``--base-channels``; and the closed-form `RidgeDecoder`. VGG19 runs at the image
   size (``vgg_input_size=None``), with ImageNet weights when the torch hub cache has them
   and random weights otherwise (recorded as ``vgg_weights``).
3. **Scores** on the held-out test images (repeats averaged): SSIM, PixCorr, MSE, AlexNet
   ``conv1``..``conv5`` correlations and two-way identification (``conv2``, ``conv5``,
   pixels), colourfulness (`neuralsight.analysis.conditions.score_reconstructions`; AlexNet
   weights recorded as ``alexnet_weights``).
4. **Learned fields.** Median distance between the end-to-end model's learned RF centres
   and the true ones, in true RF SDs, overall and per area
   (`neuralsight.analysis.fields`).
5. **Occlusion** of the spatial model by area (`neuralsight.analysis.occlusion`, pixel
   metrics), with ``fill="zeros"``: window-mode responses have no pre-stimulus bins, and
   the simulator's responses are baseline-subtracted (pre-stimulus mean 0), so zero is the
   baseline. ``drops`` are intact minus occluded (positive: worse when occluded).

It prints one JSON document ``{"machine", "settings", "results"}``; ``--out DIR`` also keeps
checkpoints and the occlusion figures and report. Run it with
``nice -n 10 python benchmarks/monkeysee_cpu.py > benchmarks/results/monkeysee_cpu.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import lightning as L
import torch

from machine import describe_machine, print_document
from neuralsight import __version__
from neuralsight.analysis.conditions import (
    feature_extractor,
    held_out_pairs,
    score_reconstructions,
    write_conditions,
)
from neuralsight.analysis.fields import field_summary, model_fields
from neuralsight.analysis.occlusion import evaluate_occlusion
from neuralsight.analysis.training import TrainingSettings, train_monkeysee
from neuralsight.data import NeuralDataModule, NeuralDataset
from neuralsight.data.sources import make_stimuli
from neuralsight.models.decoders import RidgeDecoder
from neuralsight.models.pretrained import load_pretrained
from neuralsight.simulate.cortex import simulate_cortex
from neuralsight.train import fit

MAPPINGS = ("spatial", "end_to_end", "dense")
PIXEL_METRICS = ("mse", "ssim", "pixcorr")


def _log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def make_dataset(args: argparse.Namespace) -> NeuralDataset:
    """Natural colour crops through the simulated cortex, in window mode, in memory."""
    train = make_stimuli("natural", args.n_train, size=args.size, channels=3, seed=args.seed)
    test = make_stimuli(
        "natural", args.n_test, size=args.size, channels=3, seed=args.seed, split="test"
    )
    return simulate_cortex(
        train,
        test,
        repeats_test=args.repeats_test,
        seed=args.seed,
        electrodes_per_array=args.electrodes,
        layout=args.layout,
        mode="window",
        progress=False,
    )


def training(args: argparse.Namespace, mapping: str, vgg_weights: str) -> TrainingSettings:
    """The paper's losses and optimiser, sized for a CPU."""
    return TrainingSettings(
        model={
            "mapping": mapping,
            "base_channels": args.base_channels,
            "discriminator_channels": args.base_channels,
            "lr": args.lr,
            "feature_weight": args.feature_weight,
            "vgg_weights": vgg_weights,
            "vgg_input_size": None,
            "rf_seed": args.seed,
        },
        data={"batch_size": args.batch_size, "val_fraction": 0.0, "average_repeats": True},
        trainer={"max_epochs": -1, "max_steps": 2 * args.batches, "accelerator": "cpu"},
        seed=args.seed,
    )


def train_ridge(dataset: NeuralDataset, seed: int) -> RidgeDecoder:
    """The closed-form ridge baseline, strength chosen on 10% of the training images."""
    L.seed_everything(seed, verbose=False)
    datamodule = NeuralDataModule(dataset=dataset, batch_size=256, val_fraction=0.1, seed=seed)
    model = RidgeDecoder(datamodule.n_inputs, datamodule.image_shape)
    return fit(model, datamodule, max_epochs=1, progress=False, accelerator="cpu")


def occlusion_summary(table) -> dict[str, Any]:
    """Pixel metrics per condition and their drops (intact minus occluded) for each area."""
    metrics = {name: {m: float(row[m]) for m in PIXEL_METRICS} for name, row in table.iterrows()}
    intact = metrics["intact"]
    drops = {
        name: {
            "ssim": intact["ssim"] - values["ssim"],
            "pixcorr": intact["pixcorr"] - values["pixcorr"],
            "mse_increase": values["mse"] - intact["mse"],
        }
        for name, values in metrics.items()
        if name != "intact"
    }
    v1, it = drops.get("without V1"), drops.get("without IT")
    check = None
    if v1 is not None and it is not None:
        check = all(v1[k] > it[k] for k in ("ssim", "pixcorr", "mse_increase"))
    return {"metrics": metrics, "drops": drops, "v1_drop_exceeds_it_drop": check}


def run(args: argparse.Namespace, out: Path, settings: dict[str, Any]) -> dict[str, Any]:
    """Simulate, train, score, read the learned fields and occlude; the ``results`` block.

    Adds the data set summary, timings and weights' provenance to ``settings``.
    """
    _log("simulating the cortex")
    tick = time.perf_counter()
    dataset = make_dataset(args)
    settings["dataset"] = {
        k: v for k, v in dataset.summary().items() if k not in ("meta", "bin_edges_ms")
    }
    settings["simulate_seconds"] = round(time.perf_counter() - tick, 1)
    responses, targets, _ = held_out_pairs(dataset)
    _, vgg_provenance = load_pretrained("vgg19", args.vgg_weights)
    vgg_weights = "random" if vgg_provenance == "random" else args.vgg_weights
    extractor = feature_extractor(args.alexnet_weights, input_size=args.feature_size)
    settings |= {"vgg_weights": vgg_provenance, "alexnet_weights": extractor.weights}

    results: dict[str, Any] = {"models": {}}
    models = {}
    for name in args.models:
        _log(f"training {name}")
        tick = time.perf_counter()
        if name == "ridge":
            model = train_ridge(dataset, args.seed)
        else:
            model = train_monkeysee(
                dataset, training(args, name, vgg_weights), out, name=name, progress=False
            )
        seconds = time.perf_counter() - tick
        scores = score_reconstructions(model.reconstruct(responses), targets, extractor)
        results["models"][name] = scores | {"train_seconds": round(seconds, 1)}
        models[name] = model
        _log(f"{name}: {json.dumps({k: round(v, 4) for k, v in scores.items()})}")

    if "end_to_end" in models:
        summary = field_summary(model_fields(models["end_to_end"], dataset))
        results["learned_fields"] = {
            area: {k: v for k, v in values.items() if k != "n_with_true_field"}
            for area, values in summary.items()
        }
    if "spatial" in models:
        _log("occluding the spatial model")
        occlusion = evaluate_occlusion(models["spatial"], dataset, by="area", fill="zeros")
        occlusion.meta |= {"model": "spatial", "by": "area"}
        write_conditions(occlusion, out / "occlusion", "spatial model: occlusion by area (zeros)")
        results["occlusion_spatial"] = occlusion_summary(occlusion.table)

    return results


def main(argv: Sequence[str] | None = None) -> dict:
    """Run the benchmark, print its JSON document and return it."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=32, help="image side (a multiple of 32)")
    parser.add_argument("--n-train", type=int, default=3000)
    parser.add_argument("--n-test", type=int, default=100)
    parser.add_argument("--repeats-test", type=int, default=10)
    parser.add_argument("--electrodes", type=int, default=64, help="electrodes per array")
    parser.add_argument(
        "--layout", choices=("tvsd", "spread"), default="tvsd", help="array placement"
    )
    parser.add_argument("--batches", type=int, default=1100, help="training batches per model")
    parser.add_argument("--batch-size", type=int, default=8, help="8: the reference's")
    parser.add_argument("--base-channels", type=int, default=32)
    parser.add_argument("--lr", type=float, default=1e-3, help="Adam lr (paper: 2e-4)")
    parser.add_argument(
        "--feature-weight", type=float, default=1.0, help="VGG19 loss weight (paper: 1.0)"
    )
    parser.add_argument(
        "--models", nargs="+", choices=(*MAPPINGS, "ridge"), default=[*MAPPINGS, "ridge"]
    )
    parser.add_argument("--vgg-weights", default="auto", help="VGG19 weights of the loss")
    parser.add_argument("--alexnet-weights", default="auto", help="AlexNet weights of metrics")
    parser.add_argument(
        "--threads", type=int, default=1, help="torch.set_num_threads (1 on a shared machine)"
    )
    parser.add_argument(
        "--feature-size", type=int, default=224, help="AlexNet input side (224 as published)"
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=None, help="keep checkpoints and figures")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    started, load_before = time.perf_counter(), os.getloadavg()
    doc: dict[str, Any] = {
        "settings": vars(args) | {"out": args.out and str(args.out)},
    }
    if args.out is not None:
        doc["results"] = run(args, args.out, doc["settings"])
    else:
        with tempfile.TemporaryDirectory(prefix="monkeysee_cpu_") as folder:
            doc["results"] = run(args, Path(folder), doc["settings"])
    doc["machine"] = {
        **describe_machine(load_before),
        "neuralsight": __version__,
        "python": platform.python_version(),
        "total_seconds": round(time.perf_counter() - started, 1),
    }
    return print_document(doc)


if __name__ == "__main__":
    main()
