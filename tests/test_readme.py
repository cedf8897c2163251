"""The README is for users and stays true: short, its quick commands run as written, every flag its
commands show exists, its links and the docs' links point at files that exist, and no file a user or
contributor reads narrates the project's history (that lives in git)."""

from __future__ import annotations

import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
DOCS = sorted((ROOT / "docs").glob("*.md"))
BIN = Path(sys.executable).parent


def shell_lines(path: Path) -> list[str]:
    """The command lines of a markdown file's ```bash blocks, comments dropped, continued lines joined."""
    lines, inside, pending = [], False, ""
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.startswith("```"):
            inside = line.strip() == "```bash"
            continue
        if inside and line.strip() and not line.lstrip().startswith("#"):
            command = pending + re.sub(r"\s+#.*$", "", line).strip()
            if command.endswith("\\"):
                pending = command[:-1] + " "
                continue
            lines.append(command)
            pending = ""
    return lines


def argv_of(command: str) -> list[str]:
    """A README command as the argv this environment runs: `python` is this interpreter, console
    scripts are this environment's."""
    words = shlex.split(command)
    if words[0] == "python":  # a script of the repository's root, from any folder
        return [sys.executable, *(str(ROOT / w) if w.endswith(".py") else w for w in words[1:])]
    return [str(BIN / words[0]), *words[1:]]


def run(command: str, cwd: Path = ROOT) -> subprocess.CompletedProcess:
    return subprocess.run(argv_of(command), cwd=cwd, capture_output=True, text=True, timeout=300)


def test_the_readme_is_short():
    assert len(README.read_text(encoding="utf-8").splitlines()) <= 200


def test_the_readme_shows_the_quick_commands():
    lines = shell_lines(README)
    for command in ("python train.py --help", "python stylize.py --help", "texture-nets --help",
                    "python stylize.py --model mosaic.pt"):
        assert command in lines, command


@pytest.mark.parametrize("command", [line for line in shell_lines(README) if line.endswith("--help")])
def test_every_help_command_of_the_readme_runs(command):
    result = run(command)
    assert result.returncode == 0, result.stderr
    assert "usage:" in result.stdout


def test_stylize_with_the_shipped_mosaic_as_the_readme_shows(tmp_path):
    result = run("python stylize.py --model mosaic.pt", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    (written,) = tmp_path.glob("chelsea_mosaic*.png")
    assert written.name in result.stdout
    sample = Image.open(ROOT / "texture_nets" / "samples" / "chelsea.jpg").convert("RGB")
    picture = Image.open(written).convert("RGB")
    assert picture.size == sample.size and picture.tobytes() != sample.tobytes()


def help_of(program: tuple[str, ...]) -> str:
    result = subprocess.run([*argv_of(" ".join(program)), "--help"], cwd=ROOT, capture_output=True, text=True,
                            timeout=300)
    assert result.returncode == 0, result.stderr
    return result.stdout


def program_of(command: str) -> tuple[str, ...] | None:
    """The program a README/docs command line runs (with its subcommand), or None for other tools."""
    words = shlex.split(command)
    if words[:2] in (["python", "train.py"], ["python", "stylize.py"]):
        return tuple(words[:2])
    if words[0] == "texture-nets" and len(words) > 1 and not words[1].startswith("-"):
        return tuple(words[:2])
    return None


def test_every_flag_the_docs_show_exists():
    helps: dict[tuple[str, ...], str] = {}
    unknown = []
    for path in [README, *DOCS]:
        for command in shell_lines(path):
            program = program_of(command)
            if program is None:
                continue
            text = helps.setdefault(program, help_of(program))
            for flag in re.findall(r"(?<![\w-])(--[a-z][a-z0-9_]*)", command):
                if not re.search(rf"{flag}\b", text):
                    unknown.append(f"{path.name}: {flag} in `{command}`")
    assert not unknown, "\n".join(unknown)


def test_links_of_the_readme_and_docs_point_at_files():
    broken = []
    for path in [README, *DOCS]:
        for target in re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", path.read_text(encoding="utf-8")):
            if "://" not in target and not (path.parent / target).exists():
                broken.append(f"{path.relative_to(ROOT)} → {target}")
    assert not broken, "\n".join(broken)


def test_the_architecture_diagram_fits_forty_lines():
    text = (ROOT / "docs" / "architecture.md").read_text(encoding="utf-8")
    diagram = re.search(r"```[a-z]*\n(.*?)```", text, re.S).group(1)
    assert "core/" in diagram and "training/" in diagram and "inference/" in diagram
    assert len(diagram.splitlines()) <= 40


def test_no_file_narrates_the_projects_history():
    pattern = re.compile(r"issue [0-9]+|was" + r" lent", re.I)
    found = []
    for top in ("README.md", "docs", "configs", "tests", "texture_nets"):
        paths = [ROOT / top] if (ROOT / top).is_file() else (ROOT / top).rglob("*")
        for path in paths:
            if path.is_file() and path.suffix in (".md", ".py", ".toml", ".sh", ".txt", ".html", ".js", ".css"):
                for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
                    if pattern.search(line):
                        found.append(f"{path.relative_to(ROOT)}:{number}: {line.strip()}")
    assert not found, "\n".join(found)
