"""The web dashboard: job list, job page with live charts, run comparison, sweeps, fleet
page, served at ``/``.

The pages are static shells; their scripts call the v1 API with the token the user gives
once (kept in the tab's ``sessionStorage``). The charts use the Plotly bundle that ships
inside the ``plotly`` Python package, served from ``/vendor/plotly.min.js``.
"""

from __future__ import annotations

import functools
import importlib.util
from pathlib import Path

from flask import Blueprint, render_template, send_file

from service.core.errors import NotFound

bp = Blueprint(
    "dashboard",
    __name__,
    template_folder="templates",
    static_folder="static",
    static_url_path="/dashboard/static",
)
ONE_DAY = 86_400


@functools.lru_cache(maxsize=1)
def plotly_bundle() -> Path | None:
    """``plotly.min.js`` inside the installed ``plotly`` package (found without importing it)."""
    found = importlib.util.find_spec("plotly")
    for folder in (found.submodule_search_locations or []) if found else []:
        path = Path(folder) / "package_data" / "plotly.min.js"
        if path.is_file():
            return path
    return None


@bp.get("/")
def show_jobs():
    return render_template("dashboard/jobs.html", page="jobs")


@bp.get("/jobs/<job_id>")
def show_job(job_id: str):
    return render_template("dashboard/job.html", page="job", job_id=job_id)


@bp.get("/compare")
def show_compare():
    return render_template("dashboard/compare.html", page="compare")


@bp.get("/sweeps")
def show_sweeps():
    return render_template("dashboard/sweeps.html", page="sweeps")


@bp.get("/sweeps/<sweep_id>")
def show_sweep(sweep_id: str):
    return render_template("dashboard/sweep.html", page="sweep", sweep_id=sweep_id)


@bp.get("/fleet")
def show_fleet():
    return render_template("dashboard/fleet.html", page="fleet")


@bp.get("/vendor/plotly.min.js")
def plotly_js():
    """The charting library, from the ``plotly`` package (cached by browsers for a day)."""
    path = plotly_bundle()
    if path is None:
        raise NotFound("the plotly package is not installed", code="plotly_missing")
    return send_file(path, mimetype="text/javascript", conditional=True, max_age=ONE_DAY)
