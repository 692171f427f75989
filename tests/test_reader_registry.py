"""Every registered reader is offered by ``neuralsight convert`` and resolves to a reader."""

from __future__ import annotations

import inspect
import subprocess
import sys

import pytest

from neuralsight.cli import build_parser
from neuralsight.data.readers import READERS


@pytest.mark.parametrize("fmt", READERS.names())
def test_every_registered_reader_is_a_choice_of_neuralsight_convert(fmt, capsys):
    parser = build_parser()
    assert parser.parse_args(["convert", fmt, "in.dat", "--out", "x.h5"]).format == fmt
    with pytest.raises(SystemExit):
        parser.parse_args(["convert", "--help"])
    assert fmt in capsys.readouterr().out


@pytest.mark.parametrize("fmt", READERS.names())
def test_every_registered_reader_resolves_to_a_read_function_of_paths(fmt):
    reader = READERS.get(fmt)
    assert callable(reader) and reader.__module__.startswith("neuralsight.data.readers.")
    assert next(iter(inspect.signature(reader).parameters)) == "paths"


def test_unknown_reader_names_the_known_formats():
    with pytest.raises(ValueError, match=r"unknown reader 'xls'; known: fmri69, npy_images, "):
        READERS.get("xls")


def test_listing_the_readers_imports_no_reader():
    assert READERS.names() == ("fmri69", "npy_images", "npz", "nwb", "sid_mat", "tvsd")
    probe = "import sys; from neuralsight.cli import build_parser; build_parser(); "
    probe += "print(sorted({'pynwb', 'scipy.io'} & set(sys.modules)))"
    found = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True)
    assert found.returncode == 0, found.stderr
    assert found.stdout.strip() == "[]"
