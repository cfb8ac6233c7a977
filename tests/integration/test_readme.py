"""The README as a script: every ``sh`` block runs, in a clean folder with no fitfleet setting
in the environment, and each ``text`` block after one is checked against what it printed.

A block the walk cannot run (it installs, or needs production servers) carries
``<!-- readme-test: skip: REASON -->`` on the line before it; a long-running one (``fitfleet
api``) carries ``<!-- readme-test: background: REASON -->`` and serves the blocks after it.
In an expected line ``...`` stands for anything, ``JOB_ID`` for the demo's job, and a
decimal figure matches within 0.02. The only liberty taken: the demo and the API get a free
port instead of 8000 (``--port``, and FITFLEET_API_URL for the client commands).
"""

from __future__ import annotations

import os
import re
import shlex
import signal
import subprocess
import sys
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.conftest import free_port
from tests.integration.stack import wait_for

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"
MARK = re.compile(r"<!-- readme-test: (skip|background): (.+?) -->")
FLOAT = re.compile(r"\d+\.\d+")


@dataclass
class Block:
    lang: str
    lines: list[str]
    mark: tuple[str, str] | None = None
    expect: list[str] = field(default_factory=list)


def parse(text: str) -> list[Block]:
    """The fenced blocks, each ``sh`` block with its marker and the ``text`` block after it."""
    blocks: list[Block] = []
    lines = text.splitlines()
    i, previous = 0, None
    while i < len(lines):
        fence = re.match(r"^```(\w*)\s*$", lines[i])
        if not fence:
            if lines[i].strip():
                previous = lines[i]
            i += 1
            continue
        end = next(j for j in range(i + 1, len(lines)) if lines[j].startswith("```"))
        mark = MARK.fullmatch(lines[i - 1].strip()) if i else None
        block = Block(fence[1], lines[i + 1 : end], (mark[1], mark[2]) if mark else None)
        if (
            block.lang == "text"
            and blocks
            and blocks[-1].lang == "sh"
            and previous is not None
            and previous.startswith("```")
        ):
            blocks[-1].expect = block.lines
        blocks.append(block)
        previous, i = lines[end], end + 1
    return blocks


def _clean_env(port: int) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("FITFLEET_", "DATABASE_URL", "CELERY_BROKER_URL", "AWS_"))
    }
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    env["FITFLEET_API_URL"] = f"http://127.0.0.1:{port}"  # the free port, see above
    return env


class Walk:
    """Runs the README's commands in ``folder``; keeps the demo's job id."""

    def __init__(self, folder: Path, port: int):
        self.folder, self.port, self.env = folder, port, _clean_env(port)
        self.job_id: str | None = None
        self.background: list[subprocess.Popen] = []
        self.ran: list[str] = []

    def argv(self, line: str) -> list[str] | None:
        words = shlex.split(line, comments=True)
        if not words:
            return None
        if words == ["source", ".venv/bin/activate"]:
            assert (Path(sys.executable).parent / "activate").is_file()
            return None
        assert words[0] in ("fitfleet", ".venv/bin/fitfleet"), (
            f"README command {line!r} is neither run by this walk nor marked readme-test: skip"
        )
        words = [self.job_id if w == "JOB_ID" else w for w in words[1:]]
        if words[0] in ("demo", "api"):
            words += ["--port", str(self.port)]
        return [sys.executable, "-m", "fitfleet", *words]

    def run(self, block: Block) -> str:
        out = []
        for line in block.lines:
            argv = self.argv(line)
            if argv is None:
                continue
            self.ran.append(line)
            if block.mark and block.mark[0] == "background":
                self._start(argv)
                continue
            done = subprocess.run(
                argv,
                cwd=self.folder,
                env=self.env,
                capture_output=True,
                text=True,
                timeout=900,
                check=False,
            )
            assert done.returncode == 0, (line, done.stdout[-3000:], done.stderr[-3000:])
            out.append(done.stdout + done.stderr)
            found = re.search(r"job ([0-9a-f]{32}) submitted", done.stdout)
            self.job_id = found[1] if found else self.job_id
        return "".join(out)

    def _start(self, argv: list[str]) -> None:
        log = open(self.folder / f"background-{len(self.background)}.log", "w")  # noqa: SIM115
        proc = subprocess.Popen(
            argv,
            cwd=self.folder,
            env=self.env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        self.background.append(proc)
        wait_for(lambda: self._healthy() or proc.poll() is not None, 120, 0.3, "fitfleet api")
        assert proc.poll() is None, (self.folder / log.name).read_text()[-3000:]

    def _healthy(self) -> bool:
        try:
            with urllib.request.urlopen(
                f"{self.env['FITFLEET_API_URL']}/api/v1/healthz", timeout=2
            ):
                return True
        except OSError:
            return False

    def stop(self) -> None:
        for proc in self.background:  # each by its pid, then its own process group
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                try:
                    proc.wait(60)
                except subprocess.TimeoutExpired:
                    os.killpg(proc.pid, signal.SIGKILL)
                    proc.wait(30)


def _pattern(expected: str, job_id: str | None) -> tuple[re.Pattern, list[float]]:
    text = " ".join(expected.split())
    figures = [float(f) for f in FLOAT.findall(text)]
    parts = re.split(r"(\.\.\.|JOB_ID|\d+\.\d+)", text)
    regex = ""
    for part in parts:
        if part == "...":
            regex += ".*"
        elif part == "JOB_ID":
            regex += re.escape(job_id) if job_id else "[0-9a-f]{32}"
        elif FLOAT.fullmatch(part):
            regex += r"(\d+\.\d+)"
        else:
            regex += re.escape(part)
    return re.compile(regex), figures


def check_output(output: str, expected: list[str], job_id: str | None) -> None:
    """Each expected line matches an output line, in order."""
    lines = [" ".join(line.split()) for line in output.splitlines()]
    at = 0
    for want in filter(str.strip, expected):
        regex, figures = _pattern(want, job_id)
        for i in range(at, len(lines)):
            found = regex.fullmatch(lines[i])
            if found and all(abs(float(g) - f) <= 0.02 for g, f in zip(found.groups(), figures)):
                at = i + 1
                break
        else:
            raise AssertionError(f"README promises {want!r}; the commands printed:\n{output}")


def test_parse_finds_markers_and_expected_output():
    blocks = parse(
        "x\n<!-- readme-test: skip: why -->\n```sh\nmake a\n```\n\n```text\nout\n```\n"
        "```sh\nfitfleet list\n```\nprose\n```text\nnot its output\n```\n"
    )
    assert [b.lang for b in blocks] == ["sh", "text", "sh", "text"]
    assert blocks[0].mark == ("skip", "why") and blocks[0].expect == ["out"]
    assert blocks[2].mark is None and blocks[2].expect == []
    with pytest.raises(AssertionError):
        check_output("accuracy: 0.9000", ["accuracy: 0.9500"], None)
    check_output("a\naccuracy: 0.9010 - x\nb", ["accuracy: 0.9000 - ..."], None)


def test_readme_walks_as_a_script(tmp_path):
    text = README.read_text()
    assert "shared/" not in text and "docs/API.md" in text  # nothing outside the repository
    blocks = [b for b in parse(text) if b.lang == "sh"]
    walk = Walk(tmp_path, free_port())
    try:
        for block in blocks:
            if block.mark and block.mark[0] == "skip":
                assert block.mark[1].strip(), "a skipped block says why"
                continue
            output = walk.run(block)
            if block.expect:
                check_output(output, block.expect, walk.job_id)
    finally:
        walk.stop()
    assert walk.job_id and (tmp_path / ".fitfleet" / "models" / f"{walk.job_id}.keras").is_file()
    assert any(r.startswith("fitfleet demo") for r in walk.ran)
    assert any(r.startswith("fitfleet api") for r in walk.ran)
    assert len(walk.ran) >= 7, walk.ran
