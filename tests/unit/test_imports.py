"""Dependency direction: the API starts without TensorFlow, Keras or the workers package."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
HEAVY = ("tensorflow", "keras", "workers")


def loaded_after(code: str, env: dict | None = None) -> set[str]:
    """Top-level module names in ``sys.modules`` after running ``code`` in a fresh interpreter."""
    listing = "import json, sys\nprint(json.dumps(sorted({m.split('.')[0] for m in sys.modules})))"
    proc = subprocess.run(
        [sys.executable, "-c", f"{code}\n{listing}"],
        cwd=ROOT,
        check=False,
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
    )
    assert proc.returncode == 0, proc.stderr
    return set(json.loads(proc.stdout.strip().splitlines()[-1]))


def test_create_app_imports_no_tensorflow_keras_or_workers(tmp_path):
    code = (
        "from service.core.config import Settings\n"
        "from service.web.app import create_app\n"
        f"app = create_app(Settings.from_env({{}}, home={str(tmp_path)!r}, "
        f"database_url='sqlite:///{tmp_path / 'db.sqlite'}'))\n"
        "assert app.url_map is not None"
    )
    modules = loaded_after(code)
    assert "flask" in modules  # the check itself sees what was imported
    for name in HEAVY:
        assert name not in modules, f"create_app() imported {name}"


def test_every_core_module_imports_no_flask_and_no_keras():
    """Every module of service outside service.web, found by walking its folder."""
    code = (
        "import importlib, pathlib\n"
        "root = pathlib.Path('service')\n"
        "names = sorted('.'.join(p.with_suffix('').parts).removesuffix('.__init__')\n"
        "               for p in root.rglob('*.py') if 'web' not in p.parts)\n"
        "assert len(names) > 10, names\n"
        "for name in names:\n"
        "    importlib.import_module(name)"
    )
    modules = loaded_after(code)
    assert "sqlalchemy" in modules  # the walk imported the store
    for name in ("flask", "werkzeug", *HEAVY):
        assert name not in modules, f"the service core imported {name}"


def test_import_contracts_hold():
    """The dependency direction of pyproject.toml's import-linter contracts, all kept."""
    lint_imports = Path(sys.executable).with_name("lint-imports")
    if not lint_imports.exists():
        pytest.skip("import-linter is not installed (it comes with the dev extra)")
    proc = subprocess.run(
        [str(lint_imports), "--no-cache"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
    assert "0 broken" in proc.stdout


def test_wsgi_module_creates_its_app_lazily(tmp_path):
    env = {
        "PATH": "/usr/bin:/bin",
        "FITFLEET_HOME": str(tmp_path),
        "DATABASE_URL": f"sqlite:///{tmp_path / 'db.sqlite'}",
    }
    code = (
        "import service.web.wsgi as w\n"
        "assert w._app is None, 'app created at import'\n"
        "import sys\n"
        "assert 'flask' not in sys.modules\n"
        "from flask import Flask\n"
        "assert isinstance(w.app, Flask) and w.app is w.app\n"
        "assert w.app.config['FITFLEET_SETTINGS'].home == " + repr(str(tmp_path))
    )
    modules = loaded_after(code, env)
    for name in HEAVY:
        assert name not in modules


def test_validating_a_spec_loads_keras_only_when_asked():
    pytest.importorskip("keras")
    code = (
        "import sys\n"
        "from service.admission import modelspec\n"
        "assert 'keras' not in sys.modules\n"
        "modelspec.keras_message(ValueError('x'))\n"
        "assert 'keras' not in sys.modules\n"
        "import keras\n"
        "m = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])\n"
        "import json\n"
        "s = modelspec.validate({'model': json.loads(m.to_json()), 'compile': {'loss': 'mse'}})\n"
        "assert s['total_params'] == 3"
    )
    assert "keras" in loaded_after(code)


def test_fitfleet_package_imports_no_flask_or_tensorflow():
    if not (ROOT / "fitfleet" / "__init__.py").exists():
        pytest.skip("the fitfleet package is not written yet")
    modules = loaded_after("import fitfleet")
    for name in ("flask", "werkzeug", "tensorflow", "keras", "service", "workers"):
        assert name not in modules, f"import fitfleet imported {name}"
