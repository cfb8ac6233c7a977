"""bench/ never imports the test suite; what it shares with the tests lives in testbed/.

import-linter sees only packages, and bench/ is a folder of scripts, so this test reads
the scripts themselves.
"""

from __future__ import annotations

import fnmatch
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
IMPORTS_TESTS = re.compile(r"^\s*(from\s+tests[.\s]|import\s+tests\b)")
PATH_INTO_TESTS = re.compile(r"""["']tests["']|["']tests/""")  # sys.path into tests/


def offenders(folder: Path) -> list[str]:
    """``file:line: text`` of every line in ``folder/*.py`` that reaches into tests/."""
    found = []
    for path in sorted(folder.glob("*.py")):
        for number, line in enumerate(path.read_text().splitlines(), 1):
            if IMPORTS_TESTS.match(line) or PATH_INTO_TESTS.search(line):
                found.append(f"{path.name}:{number}: {line.strip()}")
    return found


@pytest.mark.parametrize("folder", ["bench", "testbed"])
def test_bench_and_testbed_never_import_the_tests(folder):
    found = offenders(ROOT / folder)
    assert not found, (
        f"{folder}/ reaches into tests/; move what it needs to testbed/ "
        f"and import it from there: {'; '.join(found)}"
    )


def test_the_check_sees_every_way_in(tmp_path):
    (tmp_path / "bad.py").write_text(
        "from tests.conftest import free_port\n"
        "import tests.specs\n"
        'sys.path[:0] = [str(ROOT / "tests" / "integration")]\n'
        "from testbed.specs import blobs  # tests share this\n"
        "import testsuite\n"
    )
    (tmp_path / "good.py").write_text("from testbed.services import free_port\n")
    found = offenders(tmp_path)
    assert [f.split(":")[:2] for f in found] == [["bad.py", "1"], ["bad.py", "2"], ["bad.py", "3"]]


def test_testbed_imports_neither_pytest_nor_the_tests_and_is_not_shipped():
    code = (
        "import json, sys\nimport testbed.services, testbed.specs, testbed.stack\n"
        "print(json.dumps(sorted({m.split('.')[0] for m in sys.modules})))"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    modules = set(json.loads(proc.stdout.splitlines()[-1]))
    assert "testbed" in modules and not modules & {"pytest", "tests", "keras", "flask"}
    tomllib = pytest.importorskip("tomllib")  # Python 3.11+
    find = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    patterns = find["packages"]["find"]["include"]
    assert not any(fnmatch.fnmatch("testbed", p) for p in patterns), patterns
