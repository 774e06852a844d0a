"""The README's Python examples run as written (in a folder holding a real photo.png), and the README
starts with the two set-up commands that .ci/run runs."""
import re
import shutil
from pathlib import Path

from conftest import DATA

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()


def test_readme_python_examples_run(tmp_path, monkeypatch, capsys):
    blocks = re.findall(r"```python\n(.*?)```", README, re.S)
    assert len(blocks) >= 2
    shutil.copy(DATA / "kodim23_rgb_64x48.png", tmp_path / "photo.png")
    monkeypatch.chdir(tmp_path)
    scope: dict = {}
    for code in blocks:
        exec(compile(code, "README.md", "exec"), scope)  # noqa: S102
    out = capsys.readouterr().out
    assert "['default', 'fast', 'max', 'pyramid', 'video']" in out and "refused: not an armcodec file" in out


def test_readme_starts_with_the_ci_commands():
    first = re.search(r"```bash\n(.*?)```", README, re.S).group(1)
    commands = [line.split("#")[0].strip() for line in first.strip().splitlines()]
    ci = [line for line in (ROOT / ".ci" / "run").read_text().splitlines() if line.startswith("python")]
    normal = [c.replace("python -m pip install -q", "pip install") for c in ci]
    assert normal == commands
