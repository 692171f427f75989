"""Quiet by default: what a user sees is neuralsight's own progress and results.

Lightning announces every Trainer ("GPU available: False, used: False", a "litlogger" tip,
"`Trainer.fit` stopped: ...", "Seed set to 0") and torch / Lightning raise a few warnings
that are not the user's to act on (a ``LeafSpec`` deprecation inside Lightning, hints about
logging intervals and loader workers for neuralsight's own loaders, the TensorBoard notice:
neuralsight's reports read the CSV log; modules in eval mode when training starts: the
frozen pretrained networks of losses and priors are so by design). `silence_third_party`
turns those off: Lightning's loggers (``lightning.pytorch``, ``lightning.fabric``) go to
``WARNING`` and the known warnings of `KNOWN_WARNINGS`, matched by category and message,
are ignored. Lightning's warnings about the user's own settings and its progress bar stay.

The Trainer factory (`neuralsight.train.make_trainer`) and the ``neuralsight`` command call
it; ``neuralsight --verbose`` (or ``NEURALSIGHT_VERBOSE=1`` in the environment, which
processes started by distributed training inherit) brings everything back.
"""

from __future__ import annotations

import logging
import os
import warnings
from typing import Literal

VERBOSE_ENV = "NEURALSIGHT_VERBOSE"
LIGHTNING_LOGGERS = ("lightning.pytorch", "lightning.fabric")
KNOWN_WARNINGS: tuple[tuple[type[Warning], str], ...] = (
    (FutureWarning, r"`isinstance\(treespec, LeafSpec\)` is deprecated"),
    (UserWarning, r"LightningCLI's args parameter is intended to run from within Python"),
    (UserWarning, r"The number of training batches \(\d+\) is smaller than the logging interval"),
    (UserWarning, r"The '\w+' does not have many workers"),
    (UserWarning, r"GPU available but not used"),
    (UserWarning, r"Checkpoint directory .* exists and is not empty"),
    (UserWarning, r"Starting from v1\.9\.0, `tensorboardX` has been removed"),
    (UserWarning, r"Found \d+ module\(s\) in eval mode at the start of training"),
)
"""``(category, message regex)`` of the third-party warnings silenced by default."""


def is_verbose() -> bool:
    """True where ``NEURALSIGHT_VERBOSE`` asks for Lightning's messages and warnings.

    Examples
    --------
    >>> import os
    >>> is_verbose() == (os.environ.get("NEURALSIGHT_VERBOSE", "0") not in ("", "0"))
    True
    """
    return os.environ.get(VERBOSE_ENV, "0") not in ("", "0")


def set_verbose(verbose: bool) -> None:
    """Show (``True``) or silence (``False``) third-party messages from now on, here and in
    the processes this one starts.

    Examples
    --------
    >>> before = is_verbose()
    >>> set_verbose(True); is_verbose()
    True
    >>> set_verbose(before)
    """
    os.environ[VERBOSE_ENV] = "1" if verbose else "0"
    silence_third_party()


def silence_third_party() -> None:
    """Apply the current setting: Lightning's info messages and `KNOWN_WARNINGS` off unless
    verbose. Cheap and idempotent, so every Trainer the factory builds calls it.

    Examples
    --------
    >>> import logging
    >>> silence_third_party()
    >>> logging.getLogger("lightning.pytorch").level == (
    ...     logging.INFO if is_verbose() else logging.WARNING)
    True
    """
    verbose = is_verbose()
    for name in LIGHTNING_LOGGERS:
        logging.getLogger(name).setLevel(logging.INFO if verbose else logging.WARNING)
    action: Literal["default", "ignore"] = "default" if verbose else "ignore"
    for category, message in KNOWN_WARNINGS:
        warnings.filterwarnings(action, message=message, category=category)
