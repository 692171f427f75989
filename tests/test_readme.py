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
