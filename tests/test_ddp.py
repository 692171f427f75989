"""Distributed training through Lightning's DDP: two CPU processes (gloo) end identical."""

import hashlib
import json

import lightning as L
import torch

from conftest import make_toy_dataset
from neuralsight.data.datamodule import NeuralDataModule
from neuralsight.models.decoders import SID
from neuralsight.train import make_trainer


def weights_hash(model: torch.nn.Module) -> str:
    """SHA-256 of the state dict without BatchNorm running statistics (kept per rank)."""
    digest = hashlib.sha256()
    for name, tensor in sorted(model.state_dict().items()):
        if not name.endswith(("running_mean", "running_var", "num_batches_tracked")):
            digest.update(name.encode() + tensor.detach().cpu().numpy().tobytes())
    return digest.hexdigest()


class RecordWeights(L.Callback):
    """Each rank writes hashes of its weights and its count of batches to a file."""

    def __init__(self, folder: str) -> None:
        self.folder = folder
        self.batches = 0
        self.initial = ""

    def on_train_start(self, trainer, pl_module) -> None:
        self.initial = weights_hash(pl_module)

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        self.batches += 1

    def on_train_end(self, trainer, pl_module) -> None:
        record = {
            "rank": trainer.global_rank,
            "world_size": trainer.world_size,
            "backend": torch.distributed.get_backend(),
            "batches": self.batches,
            "initial": self.initial,
            "hash": weights_hash(pl_module),
        }
        with open(f"{self.folder}/rank{trainer.global_rank}.json", "w") as file:
            json.dump(record, file)


def test_two_cpu_processes_end_with_identical_weights(tmp_path):
    dataset = make_toy_dataset(n_stimuli=96, n_units=10, n_bins=2, size=16, smooth=True)
    datamodule = NeuralDataModule(dataset=dataset, batch_size=8, seed=0)
    model = SID(n_inputs=datamodule.n_inputs, image_shape=datamodule.image_shape)
    trainer = make_trainer(
        max_epochs=2,
        progress=False,
        accelerator="cpu",
        devices=2,
        strategy="ddp_spawn",
        callbacks=[RecordWeights(str(tmp_path))],
        limit_val_batches=0,
    )
    trainer.fit(model, datamodule)
    records = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in (0, 1)]
    assert [r["rank"] for r in records] == [0, 1]
    assert all(r["world_size"] == 2 and r["backend"] == "gloo" for r in records)
    n_train = len(datamodule.train_set)
    assert records[0]["batches"] == records[1]["batches"] == 2 * -(-n_train // (2 * 8))
    assert records[0]["initial"] != records[0]["hash"], "training did not change the weights"
    assert records[0]["hash"] == records[1]["hash"]
