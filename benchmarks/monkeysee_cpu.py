"""MonkeySee on a CPU: spatial, end-to-end and dense-baseline models next to ridge, measured.

A small, complete run of the MonkeySee checks (Le et al., NeurIPS 2024) that takes about
15 minutes on two CPU cores with two torch threads:

1. **Data.** Colour crops of scikit-image's photographs (``--source natural``: four
   photographs for training, test crops from a fifth never used in training) or colour
   dead-leaves scenes (``--source deadleaves``: unlimited, train and test drawn from one
   distribution) or the image files of a folder (``--source folder --root DIR``, every
   10th file a test image), ``--size`` pixels square, shown to the simulated
   V1/V4/IT Utah arrays (`neuralsight.simulate.cortex`, 7 + 4 + 4 arrays of
   ``--electrodes`` electrodes, placed as in the TVSD monkeys, V1 and V4 in the lower
   visual field near the fovea, or with ``--layout spread`` spread over the image) in
   ``--mode window`` (one per-area window mean per electrode: V1 25-125, V4 50-150, IT
   75-175 ms) or ``--mode timecourse`` (``--bin-ms`` 3 ms bins centred on 0 to 201 ms,
   what the spatiotemporal model and occlusion by time window need; ridge is refused
   there, its ``X'X`` of units x bins inputs does not fit in memory), ``--n-train``
   training images shown once and ``--n-test`` test images shown ``--repeats-test``
   times (averaged).
2. **Models** (``--models``). `MonkeySee` with ``mapping`` ``spatial`` (fixed inverse
   retinotopic map, each electrode on the pixel nearest its RF centre, one channel per
   array), ``spatiotemporal`` (the same, one channel per area and 27 ms window, five
   windows per area), ``end_to_end`` (learned Gaussian RF per electrode, initialised from the true ones) and
   ``dense`` (the paper's baseline without RF mapping), each trained for ``--epochs``
   epochs in batches of ``--batch-size`` (32; the reference's 8 is slow on a CPU) with Adam
   (beta1 0.5) at ``--lr`` 1e-3 rather than the paper's 2e-4 (it learns faster in a short
   run), generator width ``--base-channels`` and dropout ``--dropout``; and the
   closed-form `RidgeDecoder`. ``--electrode-codes k`` gives the spatial and end-to-end
   models a learned ``k``-vector per electrode that its response is multiplied by before
   painting (``electrode_codes``; 0, the paper's plain painting, by default). Losses:
   ``--pixel-weight`` x L1, ``--adversarial-weight`` x adversarial, ``--feature-weight`` x
   VGG19 features (the paper's 0.5, 0.01 and 1.0). The adversarial term is off by default:
   after 20 epochs on 3,000 images it cost the spatial model SSIM 0.331 against 0.474
   without it, on crops held out of training; GAN training pays off over the long runs of
   the GPU configs. VGG19 runs at the image size (``vgg_input_size=None``) with ImageNet
   weights when the torch hub cache has them; with random weights (recorded as
   ``vgg_weights``) its features are no perceptual loss, so the feature term is off by
   default. Training settings were chosen on crops of the training photographs held out
   of training, never on the test split.
3. **Scores** on the held-out test images (repeats averaged): SSIM, PixCorr, MSE, AlexNet
   ``conv1``..``conv5`` correlations and two-way identification (``conv2``, ``conv5``,
   pixels), colourfulness (`neuralsight.metrics.score_decoder`; AlexNet
   weights recorded as ``alexnet_weights``). ``model_checks_failed_metrics`` lists, for
   the painting models against dense and ridge, the checked metrics (SSIM, PixCorr,
   conv1-conv5 r) where the model does not win (empty: the issue's check holds).
4. **Learned fields.** Median distance between the end-to-end model's learned RF centres
   and the true ones, in true RF SDs, overall and per area
   (`neuralsight.analysis.fields`), after training and at its start (``--field-init``:
   ``true`` starts from the true fields, ``random`` from random ones), and the learned-RF
   map (``--out``/fields); ``coverage``: the fraction of the image within 2 RF SDs of an
   electrode of each area (`field_coverage`).
5. **Occlusion** of the spatial and spatiotemporal models by area and, with time bins, by
   50 ms window (`neuralsight.analysis.occlusion`, pixel metrics), with ``--fill mean``
   (each unit's training mean, as the reference code's zeroed z-scored inputs). ``drops``
   are intact minus occluded (positive: worse when occluded).
6. **Single-area models** (``--single-area V1 V4 IT``): one ``--single-area-model`` per
   area trained on that area's units alone (`neuralsight.analysis.single_area`), with
   their colourfulness and AlexNet conv1-conv5 correlations, whether colourfulness falls
   from V1 to V4 to IT and which area is best at each layer (the paper: V1 most colourful
   and closest at early layers, IT at late ones).

It prints one JSON document ``{"machine", "settings", "results"}``; ``--out DIR`` also keeps
checkpoints, the reconstruction grid of every model, and each analysis's figures and
report (occlusion, learned fields, single-area models) in a folder of its own; ``--accelerator gpu`` trains the MonkeySee
models on a CUDA device, for the check at the configs' 96 x 96 with the paper's losses and
ImageNet weights. Run it with
``nice -n 10 python benchmarks/monkeysee_cpu.py --threads 2 > benchmarks/results/monkeysee_cpu.json``.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import lightning as L
import torch

from machine import describe_run, print_document
from neuralsight.analysis.ablation import run_ablation
from neuralsight.analysis.conditions import feature_extractor, write_conditions
from neuralsight.analysis.fields import field_coverage, field_summary, model_fields, run_fields
from neuralsight.analysis.occlusion import evaluate_occlusion
from neuralsight.analysis.single_area import run_single_area
from neuralsight.analysis.training import MONKEYSEE_CLASS
from neuralsight.data import NeuralDataModule, NeuralDataset
from neuralsight.data.sources import make_stimuli
from neuralsight.lightning_cli import TrainingSettings, build_model, train_model
from neuralsight.metrics import score_decoder
from neuralsight.models.decoders import RidgeDecoder
from neuralsight.pretrained import first_available
from neuralsight.simulate.cortex import simulate_cortex
from neuralsight.train import fit
from neuralsight.viz.figures import reconstruction_grid

MAPPINGS = ("spatial", "spatiotemporal", "end_to_end", "dense")
DEFAULT_MODELS = ("spatial", "end_to_end", "dense", "ridge")
PAINTING_MODELS = ("spatial", "spatiotemporal", "end_to_end")
TIMECOURSE_MS = (0.0, 201.0)
"""Span of the time bins' centres in ``--mode timecourse``: four 50 ms windows from onset."""
AREAS = ("V1", "V4", "IT")
SOURCES = ("natural", "deadleaves", "folder")
PIXEL_METRICS = ("mse", "ssim", "pixcorr")
LAYER_METRICS = tuple(f"corr_conv{i}" for i in range(1, 6))
CHECKED_METRICS = ("ssim", "pixcorr", *LAYER_METRICS)
EPOCHS = 8
DROPOUT = 0.0
ADVERSARIAL_WEIGHT = 0.0


def _log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def time_axis(args: argparse.Namespace) -> dict[str, Any]:
    """Simulator options of ``--mode``: one window per area, or ``--bin-ms`` bins 0-201 ms."""
    if args.mode == "window":
        return {"mode": "window"}
    start, stop = TIMECOURSE_MS
    return {"mode": "timecourse", "t_start_ms": start, "t_stop_ms": stop, "bin_ms": args.bin_ms}


def make_dataset(args: argparse.Namespace) -> NeuralDataset:
    """Colour images of ``--source`` through the simulated cortex, in memory."""
    draw = {"size": args.size, "channels": 3, "seed": args.seed, "root": args.root}
    train = make_stimuli(args.source, args.n_train, **draw)
    test = make_stimuli(args.source, args.n_test, split="test", **draw)
    return simulate_cortex(
        train,
        test,
        repeats_test=args.repeats_test,
        seed=args.seed,
        electrodes_per_array=args.electrodes,
        layout=args.layout,
        progress=False,
        **time_axis(args),
    )


def feature_weight(args: argparse.Namespace, vgg_weights: str) -> float:
    """``--feature-weight``, or by default 1.0 (the paper's) with ImageNet VGG19 and 0 without.

    Features of a VGG19 with random weights are no perceptual loss; they only slow training.
    """
    if args.feature_weight is not None:
        return args.feature_weight
    return 0.0 if vgg_weights == "random" else 1.0


def field_start(args: argparse.Namespace, mapping: str) -> dict[str, None]:
    """Model options that start the end-to-end fields at random (``--field-init random``)."""
    if mapping == "end_to_end" and args.field_init == "random":
        return {"rf_x": None, "rf_y": None, "rf_sigma": None}
    return {}


def electrode_codes(args: argparse.Namespace, mapping: str) -> dict[str, int]:
    """``--electrode-codes`` for the models that paint (the dense baseline does not)."""
    return {} if mapping == "dense" else {"electrode_codes": args.electrode_codes}


def training(args: argparse.Namespace, mapping: str, vgg_weights: str) -> TrainingSettings:
    """The paper's losses and optimiser, sized for a CPU."""
    return TrainingSettings(
        model_class=MONKEYSEE_CLASS,
        model={
            "mapping": mapping,
            "base_channels": args.base_channels,
            "discriminator_channels": args.base_channels,
            "lr": args.lr,
            "feature_weight": feature_weight(args, vgg_weights),
            "pixel_weight": args.pixel_weight,
            "adversarial_weight": args.adversarial_weight,
            "dropout": args.dropout,
            "vgg_weights": vgg_weights,
            "vgg_input_size": None,
            "rf_seed": args.seed,
        }
        | electrode_codes(args, mapping)
        | field_start(args, mapping),
        data={"batch_size": args.batch_size, "val_fraction": 0.0, "average_repeats": True},
        trainer={"max_epochs": args.epochs, "accelerator": args.accelerator},
        seed=args.seed,
    )


def train_ridge(dataset: NeuralDataset, seed: int) -> RidgeDecoder:
    """The closed-form ridge baseline, strength chosen on 10% of the training images."""
    L.seed_everything(seed, verbose=False)
    datamodule = NeuralDataModule(dataset=dataset, batch_size=256, val_fraction=0.1, seed=seed)
    model = RidgeDecoder(datamodule.n_inputs, datamodule.image_shape)
    return fit(model, datamodule, max_epochs=1, progress=False, accelerator="cpu")


def model_checks(scores: dict[str, dict[str, float]]) -> dict[str, Any]:
    """The issue's check: the painting models above dense and ridge on every checked metric.

    For each (model, rival) pair present, the metrics of `CHECKED_METRICS` where the model
    does not beat its rival (an empty list: the check holds).
    """
    return {
        f"{model} > {rival}": [
            k for k in CHECKED_METRICS if not scores[model][k] > scores[rival][k]
        ]
        for model in PAINTING_MODELS
        for rival in ("dense", "ridge")
        if model in scores and rival in scores
    }


def fields_summary(model, dataset: NeuralDataset) -> dict[str, Any]:
    """Per area: median distance of the model's fields from the true ones, and SD ratio."""
    summary = field_summary(model_fields(model, dataset))
    return {
        area: {k: v for k, v in values.items() if k != "n_with_true_field"}
        for area, values in summary.items()
    }


def occlusion_summary(table, by: str) -> dict[str, Any]:
    """Pixel metrics per condition and their drops (intact minus occluded).

    By area, ``v1_drop_exceeds_it_drop`` says whether silencing V1 costs more than silencing
    IT on every pixel metric; by window, ``best_window`` is the window that alone keeps the
    highest SSIM.
    """
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
    if by == "window":
        best = min(drops, key=lambda name: drops[name]["ssim"])
        return {"metrics": metrics, "drops": drops, "best_window": best}
    v1, it = drops.get("without V1"), drops.get("without IT")
    check = None
    if v1 is not None and it is not None:
        check = all(v1[k] > it[k] for k in ("ssim", "pixcorr", "mse_increase"))
    return {"metrics": metrics, "drops": drops, "v1_drop_exceeds_it_drop": check}


def occlusion_results(
    models: dict[str, Any], dataset: NeuralDataset, fill: str, out: Path
) -> dict[str, Any]:
    """Occlude the spatial and spatiotemporal models by area and, with time bins, by window.

    Each (model, kind) writes its figures and report to ``out/occlusion_<model>[_window]``,
    the key of its summary in the results.
    """
    kinds = ("area", "window") if dataset.n_bins > 1 else ("area",)
    results = {}
    for name in ("spatial", "spatiotemporal"):
        for by in kinds if name in models else ():
            _log(f"occluding the {name} model by {by}")
            occlusion = evaluate_occlusion(models[name], dataset, by=by, fill=fill)
            occlusion.meta |= {"model": name, "by": by}
            key = f"occlusion_{name}" + ("_window" if by == "window" else "")
            write_conditions(occlusion, out / key, f"{name} model: occlusion by {by} ({fill})")
            results[key] = occlusion_summary(occlusion.table, by)
    return results


def single_area_results(
    dataset: NeuralDataset, args: argparse.Namespace, vgg_weights: str, out: Path
) -> dict[str, Any]:
    """One ``--single-area-model`` per area of ``--single-area``, scored side by side.

    Per area: the pixel and AlexNet layer scores, colourfulness and unit count; then the
    paper's two claims: colourfulness falls from V1 to V4 to IT, and each AlexNet layer's
    best area (V1 at conv1, IT at conv5 in the paper).
    """
    settings = training(args, args.single_area_model, vgg_weights)
    folder = out / "single_area"
    run_single_area(
        dataset,
        settings,
        folder,
        areas=args.single_area,
        weights=args.alexnet_weights,
        feature_size=args.feature_size,
        progress=False,
    )
    table = json.loads((folder / "metrics.json").read_text())
    kept = ("n_units", "ssim", "pixcorr", "colourfulness", *LAYER_METRICS)
    areas = {area: {k: table[area][k] for k in kept if k in table[area]} for area in table}
    for scores in areas.values():
        scores["n_units"] = int(scores["n_units"])
    colour = [areas[a]["colourfulness"] for a in AREAS if a in areas]
    best = {
        metric: max(areas, key=lambda a, m=metric: areas[a].get(m, float("-inf")))
        for metric in LAYER_METRICS
        if all(metric in scores for scores in areas.values())
    }
    return {
        "model": args.single_area_model,
        "areas": areas,
        "colourfulness_falls_v1_v4_it": (
            all(a > b for a, b in itertools.pairwise(colour)) if len(colour) == 3 else None
        ),
        "best_area_per_layer": best,
    }


def ablation_results(
    dataset: NeuralDataset, args: argparse.Namespace, vgg_weights: str, out: Path
) -> dict[str, Any]:
    """The ``--ablation-model`` with all loss terms, then with each switched off in turn.

    `run_ablation` trains and scores them and writes their reconstruction grid and report
    under ``out/ablation``; the block is its metrics table, one row per condition.
    """
    folder = out / "ablation"
    run_ablation(
        dataset,
        training(args, args.ablation_model, vgg_weights),
        folder,
        weights=args.alexnet_weights,
        feature_size=args.feature_size,
        progress=False,
    )
    return {
        "model": args.ablation_model,
        "conditions": json.loads((folder / "metrics.json").read_text()),
    }


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
    results: dict[str, Any] = {"models": {}, "coverage": field_coverage(dataset.units, args.size)}
    vgg = first_available(("vgg19", "vgg16"), args.vgg_weights)
    vgg_weights = "random" if vgg.weights == "random" else args.vgg_weights
    extractor = feature_extractor(args.alexnet_weights, input_size=args.feature_size)
    settings |= {
        "vgg_network": vgg.name,
        "vgg_weights": vgg.weights,
        "alexnet_weights": extractor.weights,
        "feature_weight": feature_weight(args, vgg_weights),
    }

    models = {}
    grid_rows: dict[str, Any] = {}
    for name in args.models:
        _log(f"training {name}")
        tick = time.perf_counter()
        if name == "ridge":
            model = train_ridge(dataset, args.seed)
        else:
            model = train_model(
                dataset, training(args, name, vgg_weights), out, name=name, progress=False
            )
        seconds = time.perf_counter() - tick
        record = score_decoder(model, dataset, features=extractor)
        scores = record.row()
        results["models"][name] = scores | {"train_seconds": round(seconds, 1)}
        models[name] = model
        grid_rows.setdefault("stimulus", record.targets)
        grid_rows[name] = record.reconstructions
        _log(f"{name}: {json.dumps({k: round(v, 4) for k, v in scores.items()})}")

    if grid_rows:
        reconstruction_grid(
            grid_rows, out / "reconstructions.png", title="held-out test images (repeats averaged)"
        )
    results["model_checks_failed_metrics"] = model_checks(results["models"])
    if "end_to_end" in models:
        start = build_model(dataset, training(args, "end_to_end", vgg_weights))
        results["learned_fields"] = fields_summary(models["end_to_end"], dataset)
        results["fields_at_start"] = fields_summary(start, dataset)
        run_fields(out / "checkpoints" / "end_to_end.ckpt", dataset, out / "fields")
    results |= occlusion_results(models, dataset, args.fill, out)
    if args.single_area:
        _log(f"training single-area models: {args.single_area}")
        results["single_area"] = single_area_results(dataset, args, vgg_weights, out)
    if args.ablation_model:
        _log(f"training the {args.ablation_model} model's loss ablations")
        results["ablation"] = ablation_results(dataset, args, vgg_weights, out)
    return results


def main(argv: Sequence[str] | None = None) -> dict:
    """Run the benchmark, print its JSON document and return it."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=32, help="image side (a multiple of 32)")
    parser.add_argument(
        "--source",
        choices=SOURCES,
        default="natural",
        help="stimuli: photograph crops, unlimited dead-leaves scenes, or the files in --root",
    )
    parser.add_argument("--root", default=None, help="the image folder of --source folder")
    parser.add_argument("--n-train", type=int, default=22000, help="the TVSD's 22,248")
    parser.add_argument("--n-test", type=int, default=100)
    parser.add_argument("--repeats-test", type=int, default=10)
    parser.add_argument("--electrodes", type=int, default=64, help="electrodes per array")
    parser.add_argument(
        "--layout", choices=("tvsd", "spread"), default="tvsd", help="array placement"
    )
    parser.add_argument("--epochs", type=int, default=EPOCHS, help="training epochs per model")
    parser.add_argument(
        "--batch-size", type=int, default=32, help="the reference's 8 is slow on a CPU"
    )
    parser.add_argument("--base-channels", type=int, default=32)
    parser.add_argument(
        "--dropout", type=float, default=DROPOUT, help="generator dropout (reference: none)"
    )
    parser.add_argument("--pixel-weight", type=float, default=0.5, help="L1 weight (paper: 0.5)")
    parser.add_argument(
        "--adversarial-weight",
        type=float,
        default=ADVERSARIAL_WEIGHT,
        help="paper: 0.01 (off by default: it costs pixel metrics in a short run)",
    )
    parser.add_argument("--lr", type=float, default=1e-3, help="Adam lr (paper: 2e-4)")
    parser.add_argument(
        "--feature-weight",
        type=float,
        default=None,
        help="VGG19 loss weight (default: the paper's 1.0 with ImageNet weights, else 0)",
    )
    parser.add_argument(
        "--field-init",
        choices=("true", "random"),
        default="true",
        help="where the end-to-end model's learned fields start",
    )
    parser.add_argument(
        "--electrode-codes",
        type=int,
        default=0,
        help="learned codes per electrode before painting (0: the paper's plain painting)",
    )
    parser.add_argument(
        "--fill", choices=("mean", "baseline", "zeros"), default="mean", help="occlusion fill"
    )
    parser.add_argument(
        "--mode",
        choices=("window", "timecourse"),
        default="window",
        help="one window mean per area (TVSD), or --bin-ms bins 0-201 ms (spatiotemporal)",
    )
    parser.add_argument("--bin-ms", type=float, default=3.0, help="bin width of timecourse")
    parser.add_argument(
        "--models", nargs="*", choices=(*MAPPINGS, "ridge"), default=list(DEFAULT_MODELS)
    )
    parser.add_argument(
        "--single-area",
        nargs="+",
        choices=AREAS,
        default=None,
        help="also train one model per area on that area's units alone",
    )
    parser.add_argument(
        "--single-area-model", choices=MAPPINGS, default="spatial", help="their mapping"
    )
    parser.add_argument(
        "--ablation-model",
        choices=MAPPINGS,
        default=None,
        help="also train this mapping with each loss term switched off in turn (ablation grid)",
    )
    parser.add_argument("--vgg-weights", default="auto", help="VGG19 weights of the loss")
    parser.add_argument("--alexnet-weights", default="auto", help="AlexNet weights of metrics")
    parser.add_argument(
        "--threads", type=int, default=1, help="torch.set_num_threads (1 on a shared machine)"
    )
    parser.add_argument(
        "--feature-size", type=int, default=224, help="AlexNet input side (224 as published)"
    )
    parser.add_argument(
        "--accelerator",
        choices=("cpu", "gpu"),
        default="cpu",
        help="where the MonkeySee models train (gpu: one CUDA device; ridge stays on the CPU)",
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=None, help="keep checkpoints and figures")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    started, load_before = time.perf_counter(), os.getloadavg()
    doc: dict[str, Any] = {
        "settings": vars(args) | {"out": args.out and str(args.out)},
    }
    if args.mode == "timecourse" and "ridge" in args.models:
        parser.error("ridge needs --mode window: X'X of units x time bins does not fit in memory")
    if args.out is not None:
        doc["results"] = run(args, args.out, doc["settings"])
    else:
        with tempfile.TemporaryDirectory(prefix="monkeysee_cpu_") as folder:
            doc["results"] = run(args, Path(folder), doc["settings"])
    device = "cuda" if args.accelerator == "gpu" else "cpu"
    doc["machine"] = describe_run(started, load_before, device)
    return print_document(doc)


if __name__ == "__main__":
    main()
