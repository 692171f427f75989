"""LightningCLI for ``neuralsight fit | validate | test | predict``.

Any decoder or encoder class can be named in a YAML config (``model.class_path``); its
``n_inputs`` and ``image_shape`` are taken from the DataModule, so a config names only what
a person chooses. ``predict`` writes a file that ``neuralsight evaluate`` scores: a
reconstructions file for a decoder, a response-predictions file for an encoder
(``--reconstructions`` names either). ``fit`` and ``test`` end by writing the HTML report
(`neuralsight.viz.report.write_report`) of their run folder, the trainer's ``log_dir``; a
report that cannot be written is a warning, never a failed run.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from pathlib import Path

import lightning as L
from lightning.pytorch.cli import LightningCLI
from lightning.pytorch.utilities import rank_zero_info

from neuralsight.data.datamodule import NeuralDataModule
from neuralsight.metrics.results import ReconstructionWriter, ResponsePredictionWriter
from neuralsight.models.encoders.base import Encoder


class NeuralSightCLI(LightningCLI):
    """LightningCLI wired to neuralsight's decoders and DataModule."""

    def add_arguments_to_parser(self, parser) -> None:
        parser.link_arguments("data.n_inputs", "model.init_args.n_inputs", apply_on="instantiate")
        parser.link_arguments(
            "data.image_shape", "model.init_args.image_shape", apply_on="instantiate"
        )
        parser.add_argument(
            "--reconstructions",
            default=None,
            help="predict: .npz file to write (reconstructions, or an encoder's responses)",
        )

    def before_predict(self) -> None:
        is_encoder = isinstance(self.model, Encoder)
        default_name = "predictions.npz" if is_encoder else "reconstructions.npz"
        path = self.config["predict"].get("reconstructions") or str(
            Path(self.trainer.default_root_dir) / default_name
        )
        writer = ResponsePredictionWriter(path) if is_encoder else ReconstructionWriter(path)
        self.trainer.callbacks.append(writer)

    def after_fit(self) -> None:
        self.write_report()

    def after_test(self) -> None:
        self.write_report()

    def write_report(self) -> Path | None:
        """Write ``report.html`` into the run folder (the trainer's ``log_dir``), on rank 0.

        Returns its path, or None where it could not be written: a run folder with nothing
        to report, unreadable JSON in it or a full disk is a warning, not an error.
        """
        from neuralsight.viz.report import write_report

        run_dir = Path(self.trainer.log_dir)  # a collective call: every rank asks
        if not self.trainer.is_global_zero:
            return None
        try:
            path = write_report(run_dir)
        except (OSError, ValueError) as error:
            warnings.warn(f"neuralsight: no report written for {run_dir}: {error}", stacklevel=2)
            return None
        rank_zero_info(f"neuralsight: report written to {path}")
        return path


def run_lightning_cli(argv: Sequence[str]) -> NeuralSightCLI:
    """Run LightningCLI on ``argv`` (e.g. ``["fit", "--config", "configs/x.yaml"]``)."""
    return NeuralSightCLI(
        model_class=L.LightningModule,
        datamodule_class=NeuralDataModule,
        subclass_mode_model=True,
        args=list(argv),
        save_config_kwargs={"overwrite": True},
    )
