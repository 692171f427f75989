"""Shared images: the V4 sessions' stimuli against each other and against the prior's photographs.

A decoder must never learn from a test image of the session it decodes. The feature prior is
trained on Caltech-101 photographs and the encoders on the session's own training images;
this benchmark checks the first source of leakage and measures what would come with priors
built from other sessions' images:

- **exact duplicates** within a session (a test image whose copy is a training image) and
  between sessions: the SHA-256 content hash of each image as the
  benchmarks see it (`real_data.find_datasets`, 32 x 32, 8-bit), so an image shown in two
  sessions is found whatever its file name;
- **near duplicates** between each session's images and the ``--prior-images`` Caltech-101
  training photographs (as `real_data.prepare_prior` reads them): the Pearson r of 16 x 16
  grey thumbnails, above ``--threshold`` (0.95), which survives a different crop or
  resampling of the same photograph.

It prints one JSON document: per session its image and test-image counts, how many of its
images (and of its test images) occur in each other session, and how many have a
Caltech near duplicate (with the largest r found); ``summary`` the totals.

Run it with ``python benchmarks/image_overlap.py`` (results:
``benchmarks/results/image_overlap.json``).
"""

from __future__ import annotations

import argparse
import hashlib
import sys
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from machine import print_document
from neuralsight.data.sources import make_stimuli
from real_data import PRIOR_IMAGES, ROOT, find_datasets

SIZE = 32
THUMBNAIL = 16


def content_hashes(images: np.ndarray) -> list[str]:
    """SHA-256 of each ``[C, H, W]`` image in [0, 1] rounded to 8 bits.

    Examples
    --------
    >>> images = np.zeros((2, 1, 2, 2), np.float32)
    >>> a, b = content_hashes(images)
    >>> a == b, len(a)
    (True, 64)
    """
    pixels = np.round(np.asarray(images) * 255).astype(np.uint8)
    return [hashlib.sha256(image.tobytes()).hexdigest() for image in pixels]


def grey_thumbnails(images: np.ndarray, side: int = THUMBNAIL) -> torch.Tensor:
    """Each image as a zero-mean, unit-norm ``side x side`` grey vector, ``[N, side**2]``.

    Examples
    --------
    >>> vectors = grey_thumbnails(np.random.default_rng(0).random((3, 3, 8, 8)), side=4)
    >>> vectors.shape, [round(float(v.norm()), 4) for v in vectors]
    (torch.Size([3, 16]), [1.0, 1.0, 1.0])
    """
    x = torch.as_tensor(np.asarray(images), dtype=torch.float32).mean(1, keepdim=True)
    small = F.adaptive_avg_pool2d(x, side).flatten(1)
    centred = small - small.mean(1, keepdim=True)
    return centred / centred.norm(dim=1, keepdim=True).clamp_min(1e-8)


def nearest_correlation(queries: torch.Tensor, pool: torch.Tensor) -> torch.Tensor:
    """The largest Pearson r of each query thumbnail with any thumbnail of ``pool``, ``[N]``."""
    return torch.cat([(block @ pool.T).amax(1) for block in queries.split(1024)])


def in_other_sessions(hashes: dict[str, list[str]], session: str) -> set[str]:
    """The hashes of ``session``'s images that some other session shows too."""
    others = {h for name, theirs in hashes.items() if name != session for h in theirs}
    return set(hashes[session]) & others


def count_in(own: list[str], pool: set[str], keep: np.ndarray | None = None) -> int:
    """How many of the hashes ``own`` (only those where ``keep`` is true, if given) are in
    ``pool``.

    Examples
    --------
    >>> count_in(["a", "b", "a"], {"a"}), count_in(["a", "b", "a"], {"a"}, np.array([1, 1, 0]))
    (2, 1)
    """
    kept = own if keep is None else [h for h, k in zip(own, keep, strict=True) if k]
    return sum(h in pool for h in kept)


def session_images(root: Path) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Each V4 session's distinct stimuli and a mask of its test stimuli."""
    sessions = sorted(
        p.stem.removeprefix("images_") for p in (root / "cowley_v4" / "images").glob("*.zip")
    )
    found = {}
    for name, load in find_datasets(root, sessions, SIZE).items():
        if name.startswith("cowley_v4_"):
            ds = load()
            test = np.unique(ds.stimulus_id[ds.trials("test")])
            found[name.removeprefix("cowley_v4_")] = (
                ds.stimuli,
                np.isin(np.arange(len(ds.stimuli)), test),
            )
    return found


def overlap(root: Path, prior_root: Path, prior_images: int, threshold: float, seed: int) -> dict:
    """The document's body (see the module docstring)."""
    sessions = session_images(root)
    hashes = {s: content_hashes(images) for s, (images, _) in sessions.items()}
    print(f"read {len(sessions)} sessions", file=sys.stderr, flush=True)
    photographs = make_stimuli(
        "folder", prior_images, size=SIZE, channels=3, seed=seed, root=prior_root, split="train"
    )
    pool = grey_thumbnails(photographs)
    doc: dict = {"sessions": {}}
    shown = {name: set(theirs) for name, theirs in hashes.items()}
    elsewhere = {name: in_other_sessions(hashes, name) for name in hashes}
    for session, (images, test) in sessions.items():
        own = hashes[session]
        shared = {
            other: {
                "images": count_in(own, shown[other]),
                "test_images": count_in(own, theirs, test),
            }
            for other, theirs in shown.items()
            if other != session
        }
        nearest = nearest_correlation(grey_thumbnails(images), pool)
        training = {h for h, t in zip(own, test, strict=True) if not t}
        doc["sessions"][session] = {
            "images": len(own),
            "test_images": int(test.sum()),
            "distinct_hashes": len(set(own)),
            "test_images_with_a_training_copy": count_in(own, training, test),
            "shared_with": {k: v for k, v in shared.items() if v["images"]},
            "caltech_near_duplicates": int((nearest > threshold).sum()),
            "caltech_largest_r": float(nearest.max()),
        }
    entries = doc["sessions"].values()
    doc["summary"] = {
        "sessions": len(sessions),
        "images": sum(e["images"] for e in entries),
        "distinct_images_over_sessions": len({h for hs in hashes.values() for h in hs}),
        "images_shared_with_another_session": sum(len(found) for found in elsewhere.values()),
        "test_images_shared_with_another_session": sum(
            count_in(hashes[s], elsewhere[s], test) for s, (_, test) in sessions.items()
        ),
        "test_images_with_a_training_copy": sum(
            e["test_images_with_a_training_copy"] for e in entries
        ),
        "caltech_photographs": len(photographs),
        "caltech_near_duplicates": sum(e["caltech_near_duplicates"] for e in entries),
        "threshold_r": threshold,
    }
    return doc


def main(argv: Sequence[str] | None = None) -> dict:
    """Run the check, print its JSON document and return it."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", type=Path, default=ROOT, help="folder of the real data sets")
    parser.add_argument("--prior-root", type=Path, default=PRIOR_IMAGES)
    parser.add_argument("--prior-images", type=int, default=6095, help="the Caltech train split")
    parser.add_argument("--threshold", type=float, default=0.95, help="near-duplicate r")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    body = overlap(args.root, args.prior_root, args.prior_images, args.threshold, args.seed)
    return print_document(
        {
            "settings": vars(args) | {"root": str(args.root), "prior_root": str(args.prior_root)},
            **body,
        }
    )


if __name__ == "__main__":
    main()
