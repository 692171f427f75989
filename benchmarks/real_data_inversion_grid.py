"""The settings of `EncoderInversionDecoder` on validation images of Cowley V4 sessions.

For each session of ``--sessions``, on `real_data.validation_view` (the test images dropped,
20% of the training images scored in their place): the session's encoder
(`real_data.train_encoder`) and the decoder's ridge are trained once, on the real pairing,
then every setting of ``--grid`` (``steps,lr,anchor_weight``) is scored by `score_decoder`
with ``real_data.py``'s metrics. ``steps=0`` is the feature decoder (`FeatureDecoder`), the
same ridge and generator without the search. It prints one JSON document, ``{"<session>":
{"<setting>": {"real": {metric: value}, "seconds": ...}}}``.

Run it with ``python benchmarks/real_data_inversion_grid.py --prior PRIOR.ckpt --sessions
SESSION``, once per session. Results:
``benchmarks/results/real_data_inversion_validation_grid_{190923,210225}.json``.
"""

from __future__ import annotations

import json
import tempfile
import time
from pathlib import Path

import lightning as L
import torch

import real_data
from machine import print_document
from neuralsight.analysis.conditions import feature_extractor
from neuralsight.data import NeuralDataModule
from neuralsight.metrics import score_decoder
from neuralsight.models.decoders import EncoderInversionDecoder
from neuralsight.train import fit

DEFAULT_GRID = ("0,0.05,1", "50,0.05,1", "50,0.05,0.1", "50,0.05,10")


def main() -> dict:
    """Score every setting on every session's validation images; print and return them."""
    parser = real_data.build_parser()
    parser.description = __doc__.splitlines()[0]
    parser.add_argument("--grid", nargs="+", default=list(DEFAULT_GRID))
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    extractor = feature_extractor(args.weights)
    doc: dict = {"feature_weights": extractor.weights, "prior": str(args.prior)}
    for name, load in real_data.find_datasets(args.root, args.sessions, args.size).items():
        if not name.startswith("cowley_v4_"):
            continue
        ds = real_data.validation_view(load(), seed=args.seed)
        L.seed_everything(args.seed, verbose=False)
        dm = NeuralDataModule(dataset=ds, batch_size=args.batch_size, seed=args.seed)
        start = time.perf_counter()
        with tempfile.TemporaryDirectory(prefix="inversion_grid_") as folder:
            encoder = real_data.train_encoder(dm, args, Path(folder))
            model = EncoderInversionDecoder(
                dm.n_inputs, dm.image_shape, prior=str(args.prior), encoder=str(encoder)
            )
        fit(model, dm, max_epochs=1, progress=False, accelerator="cpu")
        doc[name] = {"fit_seconds": time.perf_counter() - start, "n_units": ds.n_units}
        for setting in args.grid:
            steps, lr, anchor = setting.split(",")
            model.steps, model.lr, model.anchor_weight = int(steps), float(lr), float(anchor)
            start = time.perf_counter()
            scores = score_decoder(model, ds, features=extractor)
            metrics = {k: scores.image[k] for k in real_data.PIXEL_METRICS}
            metrics |= {
                k: float(v) for k, v in (scores.features or {}).items() if k.startswith("twoway_")
            }
            seconds = time.perf_counter() - start
            doc[name][setting] = {"real": metrics, "seconds": seconds}
            real_data._log(f"{name} {setting} {seconds:.0f}s {json.dumps(metrics)}")
    return print_document(doc)


if __name__ == "__main__":
    main()
