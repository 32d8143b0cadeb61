"""The README's Python snippets run on a fresh clone (those that need no collected data): a snippet that
drifts from the code fails here, not in a newcomer's terminal."""

import re
from pathlib import Path

import pytest

README = Path(__file__).parents[2] / "README.md"
SNIPPETS = [s for s in re.findall(r"```python\n(.*?)```", README.read_text(), re.S) if "data/" not in s]

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def test_the_readme_has_runnable_snippets():
    assert len(SNIPPETS) >= 3


@pytest.mark.parametrize("index", range(len(SNIPPETS)))
def test_readme_snippet_runs(index, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # snippets may write files (a demo video)
    exec(compile(SNIPPETS[index], f"README snippet {index}", "exec"), {"__name__": "__readme__"})
