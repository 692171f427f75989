"""The README's Python example runs as printed and decodes better than chance."""

import re
from pathlib import Path

README = Path(__file__).resolve().parents[1] / "README.md"


def _python_example() -> str:
    text = README.read_text()
    section = text[text.index("## Ten lines of Python") :]
    return re.search(r"```python\n(.*?)```", section, re.S).group(1)


def test_the_ten_line_example_runs_and_reconstructs(capsys):
    code = _python_example()
    assert len(code.strip().splitlines()) <= 12
    exec(compile(code, str(README), "exec"), {})
    printed = capsys.readouterr().out
    pixcorr = float(re.search(r"'pixcorr': ([0-9.]+)", printed).group(1))
    assert pixcorr > 0.5, printed


def _section(title: str) -> str:
    text = README.read_text()
    start = text.index(f"## {title}")
    return text[start : text.index("\n## ", start + 1)]


def test_the_readme_lists_exactly_the_registered_sources_simulators_readers_and_models():
    from neuralsight.data.readers import READERS
    from neuralsight.data.sources import SOURCES
    from neuralsight.models.registry import DECODERS, ENCODERS
    from neuralsight.simulate import SIMULATORS

    cli = _section("The command line")
    sources = re.search(r"images \(`([a-z0-9 ]+)`\)", cli).group(1).split()
    simulators = re.search(r"--simulator ([a-z|\\]+)`", cli).group(1).replace("\\", "").split("|")
    readers = re.findall(r"^\| `([a-z0-9_]+)`(?:, `([a-z0-9_]+)`)? \|", _section("Readers"), re.M)
    models = set(
        re.findall(r"^\| [^|]+ \| `([A-Za-z]+)` \|", _section("Models and their papers"), re.M)
    )
    registered = {
        type_.__name__ for type_ in (*map(DECODERS.get, DECODERS), *map(ENCODERS.get, ENCODERS))
    }
    assert sorted(sources) == list(SOURCES.names())
    assert sorted(simulators) == list(SIMULATORS.names())
    assert sorted(name for row in readers for name in row if name) == list(READERS.names())
    assert models == registered
