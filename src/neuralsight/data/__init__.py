"""Data: the `NeuralDataset` model, its HDF5 store, torch views, DataModule and stimulus sources."""

from neuralsight.data.datamodule import NeuralDataModule, carve_validation
from neuralsight.data.dataset import SCHEMA_VERSION, DatasetError, NeuralDataset
from neuralsight.data.views import PairDataset

__all__ = [
    "SCHEMA_VERSION",
    "DatasetError",
    "NeuralDataModule",
    "NeuralDataset",
    "PairDataset",
    "carve_validation",
]
