"""The ``neuralsight`` command.

- ``neuralsight fit | validate | test | predict --config configs/X.yaml``: LightningCLI over
  any decoder and the `NeuralDataModule` (YAML configs under ``configs/``).
- ``neuralsight simulate``: stimuli from a named source through a simulator, to a dataset file,
  chunk by chunk (``--chunk``) in worker processes (``--workers``), so memory stays bounded.
- ``neuralsight evaluate``: a reconstructions file and its dataset to a metrics JSON, which
  records the control the decoder was trained under (``none``, ``shuffle``; ``unknown``
  where the file does not say); ``--direction encode --predictions P`` scores an encoder's
  predicted responses instead (correlation, FEVE, noise ceiling).
- ``neuralsight convert FORMAT PATH...``: an external recording to a dataset file.
- ``neuralsight demo``: the main job, end to end on embedded data.
- ``neuralsight stream``: a video encoded to spikes and decoded frame by frame, timed, to MP4.
- ``neuralsight report RUN_DIR [RUN_DIR ...]``: one self-contained HTML page for a run
  folder, or one page comparing several.
- ``neuralsight analyze occlusion | fields | single-area | ablation``: analyses of trained
  decoders (`neuralsight.analysis`), each writing figures, tables and a report into ``--out``;
  ``single-area`` and ``ablation`` train, from any decoder's YAML config (``--config``;
  MonkeySee without one) with ``--max-epochs`` / ``--max-steps`` and ``-o KEY=VALUE`` model
  options.

Quiet by default: Lightning's banners and known third-party warnings are silenced
(`neuralsight.quiet`); ``neuralsight --verbose COMMAND ...`` (any command, the training
commands too) shows them.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import signal
import sys
import threading
from collections.abc import Iterator, Sequence
from pathlib import Path

import yaml

from neuralsight.files import request_termination

LIGHTNING_COMMANDS = ("fit", "validate", "test", "predict")
VERBOSE_FLAG = "--verbose"
DEBUG_FLAG = "--debug"


WEIGHTS_HELP = (
    "AlexNet weights: auto (the $NEURALSIGHT_WEIGHTS folder, the torch hub cache, else random "
    "with a warning), imagenet (the same, or an error), random, a folder holding "
    "alexnet_features.npz or torchvision's file, or a .npz/.pth file"
)


def console(argv: Sequence[str] | None = None) -> int:
    """The ``neuralsight`` program: `main`, with every error as one line a person can act on.

    An error prints ``neuralsight: error: <file>: <what was expected, what was found>`` on
    stderr and exits with status 1; ``--debug`` (before the command) shows the traceback
    instead. Ctrl-C exits with status 130; SIGTERM unwinds the same way (temporary files
    removed, worker processes stopped) and exits with status 143.

    Examples
    --------
    >>> console(["report", "no/such/run"])
    1
    """
    argv = list(sys.argv[1:] if argv is None else argv)
    with _sigterm_unwinds():
        if argv[:1] == [DEBUG_FLAG]:
            return main(argv[1:])
        try:
            return main(argv)
        except KeyboardInterrupt:
            print("neuralsight: interrupted", file=sys.stderr)
            return 130
        except Exception as error:
            print(f"neuralsight: error: {error}", file=sys.stderr)
            print(f"(run neuralsight {DEBUG_FLAG} ... for the traceback)", file=sys.stderr)
            return 1


def _exit_on_signal(signum: int, frame: object) -> None:
    """Stop with status ``128 + signum``; should the ``SystemExit`` raised here land in a
    weak-reference callback or ``__del__`` (where Python ignores it), the next chunk or
    file rename raises it again (`neuralsight.files.raise_if_terminated`)."""
    request_termination(128 + signum)
    raise SystemExit(128 + signum)


@contextlib.contextmanager
def _sigterm_unwinds() -> Iterator[None]:
    """While the program runs, SIGTERM unwinds it as Ctrl-C does: temporary files are
    removed and worker pools shut down, then it exits with status 143."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGTERM, _exit_on_signal)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``neuralsight`` command line; returns the exit status (errors propagate)."""
    from neuralsight.quiet import set_verbose, silence_third_party

    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == [VERBOSE_FLAG]:
        argv = argv[1:]
        set_verbose(True)
    silence_third_party()
    if argv and argv[0] in LIGHTNING_COMMANDS:
        from neuralsight.lightning_cli import run_lightning_cli

        run_lightning_cli(argv)
        return 0
    args = build_parser().parse_args(argv)
    if not hasattr(args, "run"):
        build_parser().print_help()
        return 2
    return int(args.run(args) or 0)


def build_parser() -> argparse.ArgumentParser:
    """The ``neuralsight`` argument parser, one subcommand per job."""
    parser = argparse.ArgumentParser(
        prog="neuralsight",
        description="Reconstruct what an eye or a brain saw from neural activity, and back.",
        epilog=f"Training commands ({', '.join(LIGHTNING_COMMANDS)}) take a LightningCLI "
        "config: neuralsight fit --config configs/sid_retina_natural.yaml",
    )
    parser.add_argument(
        VERBOSE_FLAG,
        action="store_true",
        help="show Lightning's banners and third-party warnings (before the command)",
    )
    commands = parser.add_subparsers(title="commands", metavar="COMMAND")
    _add_simulate(commands)
    _add_evaluate(commands)
    _add_convert(commands)
    _add_demo(commands)
    _add_stream(commands)
    _add_report(commands)
    _add_analyze(commands)
    _add_prior(commands)
    for name in LIGHTNING_COMMANDS:
        commands.add_parser(name, help=f"LightningCLI {name} (see neuralsight {name} --help)")
    return parser


def _add_simulate(commands) -> None:
    from neuralsight.data.sources import SOURCES
    from neuralsight.simulate.base import SIMULATORS

    p = commands.add_parser("simulate", help="simulate neural responses to images")
    p.add_argument("--simulator", choices=SIMULATORS.names(), default="retina")
    p.add_argument(
        "--source",
        choices=SOURCES.names(),
        default="natural",
        help="stimulus source (see neuralsight.data.sources)",
    )
    p.add_argument("--root", default=None, help="folder for the folder/mnist/cifar sources")
    p.add_argument("--download", action="store_true", help="let torchvision sources download")
    p.add_argument("--n-train", type=int, default=2000)
    p.add_argument("--n-test", type=int, default=200)
    p.add_argument("--size", type=int, default=64, help="image side in pixels")
    p.add_argument("--channels", type=int, choices=(1, 3), default=1)
    p.add_argument("--preset", default=None, help="retina preset: realistic (default), ln")
    p.add_argument(
        "--cells", type=int, default=None, help="number of retinal ganglion cells (default 300)"
    )
    p.add_argument("--repeats-train", type=int, default=1)
    p.add_argument("--repeats-test", type=int, default=1)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument(
        "--chunk",
        type=int,
        default=None,
        help="stimuli simulated and written at a time, rounded up to a multiple of 32 "
        "(default 256, fewer for large cortical trials); never changes the file",
    )
    p.add_argument(
        "--workers",
        type=int,
        default=2,
        help="worker processes making chunks (0 or 1: this process); never changes the file",
    )
    p.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    p.add_argument("--out", required=True, help="dataset file to write (.h5)")
    p.set_defaults(run=_run_simulate)


def _run_simulate(args) -> int:
    from neuralsight.data.dataset import NeuralDataset
    from neuralsight.simulate.chunked import simulate_to_file

    path = simulate_to_file(
        args.out,
        simulator=args.simulator,
        source=args.source,
        n_train=args.n_train,
        n_test=args.n_test,
        size=args.size,
        channels=args.channels,
        seed=args.seed,
        repeats_train=args.repeats_train,
        repeats_test=args.repeats_test,
        **{k: v for k, v in (("preset", args.preset), ("n_cells", args.cells)) if v is not None},
        root=args.root,
        download=args.download,
        chunk=args.chunk,
        workers=args.workers,
        progress=not args.no_progress,
    )
    summary = NeuralDataset.open(path).summary()
    print(json.dumps({"out": str(path), **summary}, indent=2, default=str))
    return 0


def _add_prior(commands) -> None:
    from neuralsight.data.sources import SOURCES
    from neuralsight.metrics.features import CONV_LAYERS

    p = commands.add_parser(
        "prior",
        help="train the image prior of the feature decoder on unlabelled images (no neural data)",
    )
    p.add_argument("--source", choices=SOURCES.names(), default="folder")
    p.add_argument("--root", default=None, help="folder for the folder/mnist/cifar sources")
    p.add_argument("--split", choices=("train", "test"), default="train")
    p.add_argument("--n", type=int, required=True, help="number of images")
    p.add_argument("--size", type=int, default=32, help="image side in pixels")
    p.add_argument("--channels", type=int, choices=(1, 3), default=3)
    p.add_argument("--layer", choices=CONV_LAYERS, default="conv5", help="AlexNet layer inverted")
    p.add_argument(
        "--low-res", type=int, default=8, help="side of the image thumbnail beside it (0: none)"
    )
    p.add_argument("--width", type=int, default=128, help="generator width")
    p.add_argument("--epochs", type=int, default=15)
    p.add_argument("--weights", default="auto", help=WEIGHTS_HELP)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", required=True, help="run folder; the checkpoint is in checkpoints/")
    p.set_defaults(run=_run_prior)


def _run_prior(args) -> int:
    from neuralsight.data.sources import make_stimuli
    from neuralsight.train import feature_prior_checkpoint, train_feature_prior

    images = make_stimuli(
        args.source, args.n, args.size, args.channels, args.seed, args.split, args.root
    )
    prior = train_feature_prior(
        images,
        layer=args.layer,
        weights=args.weights,
        width=args.width,
        epochs=args.epochs,
        seed=args.seed,
        low_res=args.low_res,
        out_dir=args.out,
    )
    checkpoint = feature_prior_checkpoint(args.out)
    settings = {k: prior.hparams[k] for k in ("layer", "weights_provenance", "low_res")}
    print(json.dumps({"checkpoint": str(checkpoint), "images": len(images), **settings}))
    return 0


def _add_evaluate(commands) -> None:
    p = commands.add_parser("evaluate", help="score reconstructions against their dataset")
    p.add_argument(
        "--direction",
        choices=("decode", "encode"),
        default="decode",
        help="decode: reconstructed images; encode: an encoder's predicted responses",
    )
    p.add_argument("--reconstructions", help="decode: file written by neuralsight predict")
    p.add_argument("--predictions", help="encode: file written by neuralsight predict")
    p.add_argument("--dataset", required=True, help="the dataset file the responses came from")
    p.add_argument(
        "--split",
        choices=("train", "test"),
        default="test",
        help="the split the file must cover: each of its stimuli once or once per trial",
    )
    p.add_argument("--features", action="store_true", help="add AlexNet feature metrics")
    p.add_argument("--weights", default="auto", help=WEIGHTS_HELP)
    p.add_argument(
        "--resize",
        action="store_true",
        help="score reconstructions of another size against stimuli resized to theirs",
    )
    p.add_argument("--out", required=True, help="metrics JSON to write")
    p.set_defaults(run=_run_evaluate)


def _run_evaluate(args) -> int:
    from neuralsight.metrics import score_decoder, score_encoder, write_metrics_json

    if args.direction == "encode":
        if not args.predictions:
            raise SystemExit("neuralsight evaluate --direction encode needs --predictions FILE")
        metrics = score_encoder(args.predictions, args.dataset, split=args.split).as_dict()
    else:
        if not args.reconstructions:
            raise SystemExit("neuralsight evaluate needs --reconstructions FILE")
        scores = score_decoder(
            args.reconstructions,
            args.dataset,
            args.split,
            average_repeats=False,
            features=args.features,
            weights=args.weights,
            progress=True,
            resize=args.resize,
        )
        metrics = scores.as_dict() | {"control": scores.meta.get("control", "unknown")}
    write_metrics_json(args.out, metrics)
    print(json.dumps(metrics, indent=2))
    return 0


def _add_key_value_option(p, what: str, example: str) -> None:
    """``--option/-o KEY=VALUE``, repeatable, read by `parse_options`."""
    p.add_argument(
        "--option",
        "-o",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help=f"{what} option, value parsed as YAML (repeatable), e.g. -o {example}",
    )


def _add_convert(commands) -> None:
    from neuralsight.data.readers import READERS

    p = commands.add_parser("convert", help="translate an external recording into a dataset file")
    p.add_argument("format", choices=READERS.names(), help="the recording's format (its reader)")
    p.add_argument("paths", nargs="+", help="input file(s) of that format")
    p.add_argument("--out", required=True, help="dataset file to write (.h5)")
    _add_key_value_option(p, "reader", "bin_ms=10")
    p.set_defaults(run=_run_convert)


def parse_options(pairs: Sequence[str]) -> dict:
    """Parse ``KEY=VALUE`` strings, each value as YAML (numbers, lists, strings).

    Examples
    --------
    >>> parse_options(["bin_ms=10", "window_ms=[0, 250]", "monkey=N"])
    {'bin_ms': 10, 'window_ms': [0, 250], 'monkey': 'N'}
    """
    options = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise SystemExit(f"neuralsight convert: option {pair!r} is not KEY=VALUE")
        options[key.strip()] = yaml.safe_load(value)
    return options


def _run_convert(args) -> int:
    from neuralsight.data.readers import READERS

    reader = READERS.get(args.format)
    ds = reader(list(args.paths), **parse_options(args.option))
    path = ds.save(args.out)
    print(json.dumps({"out": str(path), **ds.summary()}, indent=2, default=str))
    return 0


def _add_demo(commands) -> None:
    p = commands.add_parser("demo", help="simulate, train, evaluate and draw, end to end")
    p.add_argument("--out", default="outputs/demo", help="output folder")
    p.add_argument("--quick", action="store_true", help="a tiny run (seconds) for smoke tests")
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(run=_run_demo)


def _run_demo(args) -> int:
    from neuralsight.demo import run_demo

    run_demo(Path(args.out), quick=args.quick, seed=args.seed)
    return 0


def _add_stream(commands) -> None:
    p = commands.add_parser(
        "stream", help="encode a video to spikes and decode it frame by frame, timed, to MP4"
    )
    p.add_argument("--video", default="synthetic", help="video file, frame folder or 'synthetic'")
    p.add_argument("--model", default=None, help="VideoSID checkpoint; omit to train one now")
    p.add_argument("--out", required=True, help="side-by-side MP4 to write")
    p.add_argument("--frames", type=int, default=None, help="at most this many frames")
    p.add_argument("--device", default="cpu", help="decoder device (cpu, cuda)")
    p.add_argument("--live", choices=("auto", "on", "off"), default="auto", help="live window")
    p.add_argument("--threads", type=int, default=1, help="torch threads while streaming")
    p.add_argument("--seed", type=int, default=0)
    g = p.add_argument_group("training on the fly (without --model)")
    g.add_argument("--size", type=int, default=64, help="frame side in pixels")
    g.add_argument("--cells", type=int, default=300, help="number of ganglion cells")
    g.add_argument("--context", type=int, default=4, help="frame bins per decoder input")
    g.add_argument("--train-videos", type=int, default=6)
    g.add_argument("--train-frames", type=int, default=200)
    g.add_argument("--epochs", type=int, default=2)
    g.add_argument("--base-channels", type=int, default=16)
    g.add_argument("--save-model", default=None, help="save the trained model here (.ckpt)")
    p.set_defaults(run=_run_stream)


def _run_stream(args) -> int:
    from neuralsight.video.stream import (
        check_frame_source,
        load_stream_model,
        source_frames,
        stream_video,
        train_stream_model,
    )

    check_frame_source(args.video, args.frames)
    if args.model is not None:
        model = load_stream_model(args.model)
    else:
        print(
            "neuralsight stream: no --model, training a VideoSID on synthetic video",
            file=sys.stderr,
        )
        with contextlib.redirect_stdout(sys.stderr):  # stdout carries only the JSON result
            model = train_stream_model(
                size=args.size,
                n_cells=args.cells,
                context=args.context,
                n_videos=args.train_videos,
                n_frames=args.train_frames,
                epochs=args.epochs,
                base_channels=args.base_channels,
                seed=args.seed,
                checkpoint=args.save_model,
            )
    frames, fps = source_frames(args.video, model, max_frames=args.frames, seed=args.seed)
    stats = stream_video(
        frames, model, args.out, fps=fps, device=args.device, live=args.live, threads=args.threads
    )
    stats["model"] = args.model or "VideoSID trained on the fly on synthetic video"
    print(json.dumps(stats, indent=2))
    return 0


def _add_report(commands) -> None:
    p = commands.add_parser(
        "report", help="write a self-contained HTML report of a run folder, or compare runs"
    )
    p.add_argument("run_dir", nargs="+", help="run folder(s) (metrics.json, run.json, PNGs, logs)")
    p.add_argument(
        "--out",
        default=None,
        help="HTML file (default RUN_DIR/report.html; with several runs compare.html)",
    )
    p.set_defaults(run=_run_report)


def _run_report(args) -> int:
    if len(args.run_dir) > 1:
        from neuralsight.analysis.compare import compare_runs

        print(compare_runs(args.run_dir, args.out or "compare.html"))
        return 0
    from neuralsight.viz.report import write_report

    print(write_report(args.run_dir[0], out=args.out))
    return 0


def _add_analyze(commands) -> None:
    p = commands.add_parser("analyze", help="analyses of trained decoders (occlusion, RFs, ...)")
    analyses = p.add_subparsers(title="analyses", metavar="ANALYSIS")
    p.set_defaults(run=lambda _: p.print_help() or 2)

    occlusion = analyses.add_parser(
        "occlusion", help="score a trained model with areas or time bins occluded"
    )
    occlusion.add_argument("--ckpt", required=True, help="MonkeySee checkpoint (.ckpt)")
    occlusion.add_argument("--dataset", required=True, help="the dataset file it was trained on")
    occlusion.add_argument("--out", required=True, help="output folder")
    occlusion.add_argument(
        "--fill",
        choices=("mean", "baseline", "zeros"),
        default="mean",
        help="replace occluded responses by each unit's training mean per time bin (as the "
        "reference code), its pre-stimulus mean, or zeros",
    )
    occlusion.add_argument(
        "--by",
        choices=("area", "window"),
        default="area",
        help="area: each area alone and each area removed; window: only one time window kept",
    )
    occlusion.add_argument(
        "--windows",
        nargs="+",
        default=None,
        metavar="START:STOP",
        help="--by window: windows in ms to keep (default 50 ms windows from onset)",
    )
    _add_feature_options(occlusion)
    occlusion.set_defaults(run=_run_analyze_occlusion)

    fields = analyses.add_parser(
        "fields", help="learned receptive fields of an end-to-end model against the true ones"
    )
    fields.add_argument("--ckpt", required=True, help="end-to-end MonkeySee checkpoint (.ckpt)")
    fields.add_argument("--dataset", required=True, help="the dataset file it was trained on")
    fields.add_argument("--out", required=True, help="output folder")
    fields.set_defaults(run=_run_analyze_fields)

    single = analyses.add_parser("single-area", help="train and score one model per area")
    _add_training_options(single)
    single.add_argument(
        "--areas", nargs="+", default=None, help="areas (default all; 'all' = every unit)"
    )
    single.set_defaults(run=_run_analyze_single_area)

    ablation = analyses.add_parser(
        "ablation", help="train and score a decoder with each loss term switched off"
    )
    _add_training_options(ablation)
    ablation.add_argument(
        "--terms",
        nargs="+",
        default=None,
        help="loss terms (<term>_weight arguments, e.g. MonkeySee's adversarial, feature, "
        "pixel) to switch off one at a time (default all)",
    )
    ablation.set_defaults(run=_run_analyze_ablation)


def _add_feature_options(p) -> None:
    g = p.add_argument_group("AlexNet feature metrics")
    g.add_argument("--weights", default="auto", help=WEIGHTS_HELP)
    g.add_argument(
        "--feature-size", type=int, default=224, help="AlexNet input side (224 as published)"
    )
    g.add_argument("--no-features", action="store_true", help="skip the AlexNet metrics")


def _add_training_options(p) -> None:
    p.add_argument("--dataset", required=True, help="dataset file to train and test on")
    p.add_argument("--out", required=True, help="output folder (checkpoints, figures, report)")
    p.add_argument(
        "--config",
        default=None,
        help="any decoder's YAML config (configs/*.yaml); default MonkeySee's defaults",
    )
    _add_key_value_option(p, "model", "mapping=dense")
    p.add_argument("--max-epochs", type=int, default=None, help="overrides the config")
    p.add_argument("--max-steps", type=int, default=None, help="optimiser steps (2 per batch)")
    p.add_argument("--batch-size", type=int, default=None, help="overrides the config")
    p.add_argument("--num-workers", type=int, default=None, help="overrides the config")
    p.add_argument("--accelerator", default=None, help="cpu, gpu or auto (overrides the config)")
    p.add_argument("--seed", type=int, default=None, help="overrides seed_everything")
    _add_feature_options(p)


def _parse_windows(windows: Sequence[str] | None) -> list[tuple[float, float]] | None:
    if windows is None:
        return None
    parsed = []
    for window in windows:
        start, sep, stop = window.partition(":")
        try:
            if not sep:
                raise ValueError(window)
            parsed.append((float(start), float(stop)))
        except ValueError:
            raise SystemExit(
                f"neuralsight analyze: window {window!r} is not START:STOP in ms"
            ) from None
    return parsed


def _run_analyze_occlusion(args) -> int:
    from neuralsight.analysis.occlusion import run_occlusion

    report = run_occlusion(
        args.ckpt,
        args.dataset,
        args.out,
        by=args.by,
        fill=args.fill,
        windows_ms=_parse_windows(args.windows),
        weights=args.weights,
        feature_size=args.feature_size,
        features=not args.no_features,
    )
    print(report)
    return 0


def _run_analyze_fields(args) -> int:
    from neuralsight.analysis.fields import run_fields

    print(run_fields(args.ckpt, args.dataset, args.out))
    return 0


def _training_args(args) -> tuple:
    from neuralsight.analysis.training import training_settings
    from neuralsight.data.dataset import NeuralDataset

    try:
        settings = training_settings(
            args.config,
            model_options=parse_options(args.option),
            max_epochs=args.max_epochs,
            max_steps=args.max_steps,
            batch_size=args.batch_size,
            num_workers=args.num_workers,
            accelerator=args.accelerator,
            seed=args.seed,
        )
    except (FileNotFoundError, ValueError) as error:
        raise SystemExit(f"neuralsight analyze: {error}") from None
    features = {
        "weights": args.weights,
        "feature_size": args.feature_size,
        "features": not args.no_features,
    }
    return NeuralDataset.open(args.dataset), settings, features


def _run_analyze_single_area(args) -> int:
    from neuralsight.analysis.single_area import run_single_area

    dataset, settings, features = _training_args(args)
    print(run_single_area(dataset, settings, args.out, areas=args.areas, **features))
    return 0


def _run_analyze_ablation(args) -> int:
    from neuralsight.analysis.ablation import run_ablation

    dataset, settings, features = _training_args(args)
    print(run_ablation(dataset, settings, args.out, terms=args.terms, **features))
    return 0


if __name__ == "__main__":
    raise SystemExit(console())
