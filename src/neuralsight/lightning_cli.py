"""LightningCLI for ``neuralsight fit | validate | test | predict``.

Any decoder or encoder class can be named in a YAML config (``model.class_path``); its
``n_inputs`` and ``image_shape`` are taken from the DataModule, so a config names only what
a person chooses. ``predict`` writes a file that ``neuralsight evaluate`` scores: a
reconstructions file for a decoder, a response-predictions file for an encoder
(``--reconstructions`` names either). ``fit`` and ``test`` end by writing the HTML report
(`neuralsight.viz.report.write_report`) of their run folder, the trainer's ``log_dir``; a
report that cannot be written is a warning, never a failed run. Its Trainer starts from the
same defaults as the API's (`neuralsight.train.TRAINER_DEFAULTS`).

The one config loader lives here too: `load_config` reads the same YAML files with the same
parser (`CLI_CLASSES`: types checked, unknown keys rejected) into `TrainingSettings`, what a
config says and nothing else; `build_model` builds its model for a data set and
`train_model` trains it with the Trainer factory (`neuralsight.train.fit`). The demo,
analyses and benchmarks train from configs this way.
"""

from __future__ import annotations

import csv
import importlib
import importlib.util
import inspect
import os
import sys
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import lightning as L
from jsonargparse import ArgumentError, Namespace
from lightning.pytorch.cli import LightningCLI

from neuralsight.data.datamodule import NeuralDataModule
from neuralsight.data.dataset import NeuralDataset
from neuralsight.metrics.results import ReconstructionWriter, ResponsePredictionWriter
from neuralsight.models.decoders.monkeysee import unit_info
from neuralsight.models.encoders.base import Encoder
from neuralsight.quiet import silence_third_party
from neuralsight.train import TRAINER_DEFAULTS, RunCheckpoint, fit


class NeuralSightCLI(LightningCLI):
    """LightningCLI wired to neuralsight's decoders and DataModule."""

    def add_arguments_to_parser(self, parser) -> None:
        """Link the model's input and image sizes to the data; add ``--reconstructions``."""
        parser.link_arguments("data.n_inputs", "model.init_args.n_inputs", apply_on="instantiate")
        parser.link_arguments(
            "data.image_shape", "model.init_args.image_shape", apply_on="instantiate"
        )
        parser.add_argument(
            "--reconstructions",
            default=None,
            help="predict: .npz file to write (reconstructions, or an encoder's responses)",
        )
        parser.add_lightning_class_args(RunCheckpoint, "checkpoint")

    def before_instantiate_classes(self) -> None:
        """``fit --ckpt_path last``: resume from this run's newest ``last.ckpt``, logging on.

        The checkpoint is looked for where this config's runs write theirs
        (`find_last_checkpoint`); none is an error, not a run trained from scratch. The
        resumed run logs into the folder of the run it continues (`continue_logging`).
        """
        if self.subcommand != "fit" or self.config["fit"].get("ckpt_path") != "last":
            return
        config = self.config["fit"]
        last = find_last_checkpoint(config)
        config["ckpt_path"] = str(last)
        continue_logging(config["trainer"], last)
        self.logged_rows = read_csv_log(last.parent.parent / "metrics.csv")

    def before_fit(self) -> None:
        """Put a resumed run's earlier CSV log rows back (Lightning's CSV logger deletes them)."""
        rows = getattr(self, "logged_rows", [])
        for logger in self.trainer.loggers:
            if rows and isinstance(logger, L.pytorch.loggers.CSVLogger):
                logger.experiment.metrics[:0] = rows
                logger.experiment.save()

    def before_predict(self) -> None:
        """Add the writer of the predictions file (images or an encoder's responses)."""
        is_encoder = isinstance(self.model, Encoder)
        default_name = "predictions.npz" if is_encoder else "reconstructions.npz"
        path = self.config["predict"].get("reconstructions") or str(
            Path(self.trainer.default_root_dir) / default_name
        )
        writer = ResponsePredictionWriter(path) if is_encoder else ReconstructionWriter(path)
        self.trainer.callbacks.append(writer)  # type: ignore[attr-defined]  # set by Lightning

    def after_fit(self) -> None:
        """Write the run folder's report."""
        self.write_report()

    def after_test(self) -> None:
        """Write the run folder's report."""
        self.write_report()

    def write_report(self) -> Path | None:
        """Write ``report.html`` into the run folder (the trainer's ``log_dir``), on rank 0.

        Returns its path, or None where it could not be written: a run folder with nothing
        to report, unreadable JSON in it or a full disk is a warning, not an error.
        """
        from neuralsight.viz.report import write_report

        run_dir = Path(self.trainer.log_dir or self.trainer.default_root_dir)  # every rank asks
        if not self.trainer.is_global_zero:
            return None
        try:
            path = write_report(run_dir)
        except (OSError, ValueError) as error:
            warnings.warn(f"neuralsight: no report written for {run_dir}: {error}", stacklevel=2)
            return None
        print(f"neuralsight: report written to {path}", file=sys.stderr)  # ours: never silenced
        return path


def _run_root(config: Namespace) -> Path:
    """The folder a config's runs write into: its logger's ``save_dir`` or the root dir."""
    trainer = config["trainer"]
    logger = trainer.get("logger")
    save_dir = logger.get("init_args.save_dir") if isinstance(logger, Namespace) else None
    return Path(save_dir or trainer.get("default_root_dir") or os.getcwd())


def find_last_checkpoint(config: Namespace) -> Path:
    """The newest ``last.ckpt`` the runs of a parsed ``fit`` config have saved.

    It is in ``checkpoint.dirpath`` where the config names one, else in a ``checkpoints``
    folder under the run root (the logger's ``save_dir`` or ``trainer.default_root_dir``).
    Raises FileNotFoundError naming the folder searched where there is none.
    """
    dirpath = config.get("checkpoint.dirpath")
    root = Path(dirpath) if dirpath else _run_root(config)
    pattern = f"{RunCheckpoint.CHECKPOINT_NAME_LAST}{RunCheckpoint.FILE_EXTENSION}"
    found = (
        [root / pattern]
        if dirpath
        else [path for path in root.rglob(pattern) if path.parent.name == "checkpoints"]
    )
    found = [path for path in found if path.is_file()]
    if not found:
        raise FileNotFoundError(
            f"{root}: --ckpt_path last: no {pattern} to resume from (a fit saves one at the "
            "end of every epoch); leave out --ckpt_path to train from the start"
        )
    return max(found, key=lambda path: path.stat().st_mtime)


def continue_logging(trainer: Namespace, last: Path) -> None:
    """Point the Trainer's logger at the run folder holding ``last`` (``<run>/checkpoints/``).

    Lightning's default logger (``logger: true``) and a logger config that takes a
    ``version`` (CSV, TensorBoard) then append to that run's logs instead of starting
    ``version_<n+1>``; ``logger: false`` logs nothing to continue.
    """
    run = last.parent.parent
    logger = trainer.get("logger")
    if logger is None or logger is True:
        trainer["logger"] = Namespace(
            class_path=f"lightning.pytorch.loggers.{_default_logger_class()}",
            init_args=Namespace(save_dir=str(run.parent.parent), name=run.parent.name),
        )
        logger = trainer["logger"]
    if isinstance(logger, Namespace) and logger.get("init_args") is not None:
        logger["init_args"]["version"] = run.name


def read_csv_log(path: Path) -> list[dict[str, str]]:
    """The rows of a Lightning ``metrics.csv`` (none where there is no such file)."""
    if not path.is_file():
        return []
    with path.open(newline="") as file:
        return list(csv.DictReader(file))


def _default_logger_class() -> str:
    """The logger class Lightning's ``logger=True`` builds: TensorBoard where installed."""
    tensorboard = any(importlib.util.find_spec(name) for name in ("tensorboard", "tensorboardX"))
    return "TensorBoardLogger" if tensorboard else "CSVLogger"


CLI_CLASSES: dict[str, Any] = {
    "model_class": L.LightningModule,
    "subclass_mode_model": True,
    "datamodule_class": NeuralDataModule,
    "trainer_defaults": TRAINER_DEFAULTS,
}
"""What `NeuralSightCLI` parses: any model, the `NeuralDataModule`, neuralsight's Trainer
defaults. ``neuralsight fit`` and `neuralsight.config.load_config` read configs with it."""


def run_lightning_cli(argv: Sequence[str]) -> NeuralSightCLI:
    """Run LightningCLI on ``argv`` (e.g. ``["fit", "--config", "configs/x.yaml"]``).

    Lightning's banners and known third-party warnings are silenced unless verbose
    (`neuralsight.quiet`), as for every Trainer the factory builds.
    """
    silence_third_party()
    return NeuralSightCLI(**CLI_CLASSES, args=list(argv), save_config_kwargs={"overwrite": True})


DATASET_KEYS = ("n_inputs", "image_shape")
"""Model arguments every config takes from the data (linked from the DataModule)."""
DATA_SOURCE_KEYS = ("path", "dataset")
"""DataModule arguments that name the data, replaced by the data set `train_model` gets."""


@dataclass(frozen=True)
class TrainingSettings:
    """What a config trains: the model class and options, DataModule, Trainer, seed.

    ``model`` holds the model's keyword arguments except those the data set gives
    (`DATASET_KEYS`); ``data`` and ``trainer`` the `NeuralDataModule` and Trainer arguments
    the config names; Trainer and DataModule defaults fill the rest.

    Examples
    --------
    >>> settings = TrainingSettings("neuralsight.models.decoders.RidgeDecoder")
    >>> settings.with_model(scaling="minmax").model
    {'scaling': 'minmax'}
    """

    model_class: str
    model: dict[str, Any] = field(default_factory=dict)
    data: dict[str, Any] = field(default_factory=dict)
    trainer: dict[str, Any] = field(default_factory=dict)
    seed: int = 0

    def with_model(self, **options: Any) -> TrainingSettings:
        """A copy with some model options changed."""
        return TrainingSettings(
            self.model_class, {**self.model, **options}, self.data, self.trainer, self.seed
        )

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready form, for ``run.json``."""
        return {
            "model_class": self.model_class,
            "model": self.model,
            "data": self.data,
            "trainer": self.trainer,
            "seed": self.seed,
        }


class _ConfigReader(NeuralSightCLI):
    """`NeuralSightCLI` that only parses: nothing is seeded, built or run."""

    def parse_arguments(self, parser, args) -> None:
        """Parse the config file, then the overrides; keep only what they name."""
        path, overrides = args["path"], args["overrides"]
        parsed = parser.parse_args(["--config", str(path)], defaults=False) if path else None
        if overrides:
            parsed = parser.parse_object(dict(overrides), namespace=parsed, defaults=False)
        self.parsed = parsed if parsed is not None else Namespace()
        self.config = Namespace(seed_everything=False)  # reading a config seeds nothing

    def instantiate_classes(self) -> None:
        """Build nothing: `build_model` builds the model for a data set."""


def load_config(
    path: str | os.PathLike | None = None, overrides: Mapping[str, Any] | None = None
) -> TrainingSettings:
    """`TrainingSettings` from a LightningCLI YAML config, checked by ``neuralsight fit``'s parser.

    ``overrides`` is a nested mapping in the config's own layout (``{"trainer":
    {"max_epochs": 2}, "model": {"init_args": {...}}}``), applied over the file; without a
    file it must name ``model.class_path``. Types are checked against the model's,
    DataModule's and Trainer's signatures; a wrong key or value is a ValueError naming the
    file and the field.

    Examples
    --------
    >>> import tempfile, os
    >>> path = os.path.join(tempfile.mkdtemp(), "c.yaml")
    >>> _ = open(path, "w").write(
    ...     "model:\\n  class_path: neuralsight.models.decoders.MonkeySee\\n"
    ...     "  init_args: {mapping: dense}\\ndata: {path: x.h5, batch_size: 4}\\n"
    ...     "trainer: {max_epochs: 2, devices: auto}\\n")
    >>> settings = load_config(path, {"trainer": {"max_epochs": 3}})
    >>> settings.model_class, settings.model, settings.data, settings.trainer
    ('neuralsight.models.decoders.MonkeySee', {'mapping': 'dense'}, {'path': 'x.h5', 'batch_size': 4}, {'max_epochs': 3, 'devices': 'auto'})
    """
    where = str(path) if path is not None else "config overrides"
    if path is not None and not Path(path).is_file():
        raise FileNotFoundError(f"{path}: no such config file")
    try:
        reader = _ConfigReader(
            **CLI_CLASSES,
            args={"path": path, "overrides": overrides},
            run=False,
            save_config_callback=None,
            load_from_checkpoint_support=False,
            parser_kwargs={"exit_on_error": False},
        )
    except ArgumentError as error:
        raise ValueError(f"{where}: {error}") from None
    config = reader.parsed.as_dict()
    model = config.get("model") or {}
    if not model.get("class_path"):
        raise ValueError(f"{where}: field 'model.class_path' is missing (the model to train)")
    seed = config.get("seed_everything")
    return TrainingSettings(
        model_class=model["class_path"],
        model={k: v for k, v in (model.get("init_args") or {}).items() if k not in DATASET_KEYS},
        data=config.get("data") or {},
        trainer=config.get("trainer") or {},
        seed=seed if isinstance(seed, int) and not isinstance(seed, bool) else 0,
    )


def model_class(settings: TrainingSettings) -> type[L.LightningModule]:
    """The class ``settings.model_class`` names, imported.

    Examples
    --------
    >>> model_class(TrainingSettings("neuralsight.models.decoders.RidgeDecoder")).__name__
    'RidgeDecoder'
    """
    module, _, name = settings.model_class.rpartition(".")
    try:
        found = getattr(importlib.import_module(module), name)
    except (ImportError, AttributeError, ValueError) as error:
        raise ValueError(
            f"model.class_path {settings.model_class!r} names no importable class ({error})"
        ) from None
    if not (isinstance(found, type) and issubclass(found, L.LightningModule)):
        raise ValueError(f"model.class_path {settings.model_class!r} is not a LightningModule")
    return found


def build_model(dataset: NeuralDataset, settings: TrainingSettings) -> L.LightningModule:
    """The untrained model of ``settings``, sized for ``dataset``.

    As in ``neuralsight fit``, ``n_inputs`` (``n_units * n_bins``) and ``image_shape`` come
    from the data set; a model that takes the units' areas, arrays, RFs or bin edges
    (MonkeySee: `unit_info`) gets them from it too. ``settings.model`` overrides any of
    them (``rf_x=None`` starts MonkeySee's learned fields at random places).

    Examples
    --------
    >>> import numpy as np
    >>> ds = NeuralDataset.from_arrays(np.ones((4, 3), np.float32), np.zeros((4, 1, 4, 4), np.float32))
    >>> build_model(ds, TrainingSettings("neuralsight.models.decoders.RidgeDecoder")).n_inputs
    3
    """
    cls = model_class(settings)
    accepted = inspect.signature(cls).parameters
    if not all(key in accepted for key in DATASET_KEYS):
        raise ValueError(
            f"{cls.__name__} is not built from {' and '.join(DATASET_KEYS)}, so it cannot be "
            "sized for a data set (or a subset of its units); give a decoder or encoder config"
        )
    arguments: dict[str, Any] = {
        "n_inputs": dataset.n_units * dataset.n_bins,
        "image_shape": dataset.image_shape,
    }
    if any(key in accepted for key in ("area", "bin_edges_ms")):
        arguments |= {k: v for k, v in unit_info(dataset).items() if k in accepted}
    return cls(**{**arguments, **settings.model})


def train_model(
    dataset: NeuralDataset,
    settings: TrainingSettings,
    out: str | os.PathLike | None = None,
    name: str = "model",
    progress: bool = True,
) -> L.LightningModule:
    """Train the model of ``settings`` on ``dataset``; returns it in eval mode.

    Seeds with ``settings.seed``, then builds the `NeuralDataModule` (``dataset`` replaces
    the config's ``data.path``) and the model (`build_model`) and trains with
    `neuralsight.train.fit`: with ``out`` the checkpoint goes to
    ``out/checkpoints/<name>.ckpt`` and a CSV log to ``out/logs/<name>``.

    Examples
    --------
    >>> import numpy as np
    >>> ds = NeuralDataset.from_arrays(np.random.rand(20, 3).astype("float32"),
    ...                                np.random.rand(20, 1, 4, 4).astype("float32"))
    >>> settings = TrainingSettings("neuralsight.models.decoders.RidgeDecoder",
    ...                             trainer={"max_epochs": 1, "accelerator": "cpu"})
    >>> train_model(ds, settings, progress=False).reconstruct(ds, split="train").shape
    (20, 1, 4, 4)
    """
    L.seed_everything(settings.seed, verbose=False)
    data = {k: v for k, v in settings.data.items() if k not in DATA_SOURCE_KEYS}
    datamodule = NeuralDataModule(dataset=dataset, **{"seed": settings.seed, **data})
    model = build_model(dataset, settings)
    return fit(model, datamodule, out_dir=out, name=name, progress=progress, **settings.trainer)
