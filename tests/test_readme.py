"""The README's Python examples run as written (one namespace, in order)."""
import pathlib
import re

README = pathlib.Path(__file__).resolve().parents[1] / "README.md"


def test_readme_examples_run():
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.S)
    assert len(blocks) >= 2
    ns: dict = {}
    for block in blocks:
        exec(compile(block, str(README), "exec"), ns)
    assert ns["fg"].precision_bits(ns["x"] * ns["x"] + ns["np"].roll(ns["x"], -1, axis=1),
                                   ns["z"]) > 20
    assert (ns["ct2"].data == ns["ct"].data).all()
