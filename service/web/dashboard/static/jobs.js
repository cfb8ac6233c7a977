// The job list: state and progress of each job, filtered by state, text and project.
"use strict";

(() => {
  const { el } = FF;
  const body = document.getElementById("jobs-body");
  const state = document.getElementById("filter-state");
  const text = document.getElementById("filter-text");
  const project = document.getElementById("filter-project");
  const more = document.getElementById("more");
  let jobs = [];
  let limit = 100;

  const params = new URLSearchParams(location.search);
  state.value = params.get("state") || "";
  text.value = params.get("q") || "";
  project.value = params.get("project") || "";

  function keepInUrl() {
    const p = new URLSearchParams();
    if (state.value) p.set("state", state.value);
    if (text.value) p.set("q", text.value);
    if (project.value) p.set("project", project.value);
    history.replaceState(null, "", p.toString() ? `?${p}` : location.pathname);
  }

  function progressCell(job) {
    const pct = job.progress.percent || (job.state === "succeeded" ? 100 : 0);
    return el("td", {},
      el("div", { class: "progress small", title: `${pct}%` },
        el("div", { class: "bar", style: `width:${Math.min(100, pct)}%` })),
      el("span", { class: "pct", text: `${pct.toFixed(1)}%` }));
  }

  function render() {
    const needle = text.value.trim().toLowerCase();
    const proj = project.value.trim().toLowerCase();
    const shown = jobs.filter((j) =>
      (!needle || j.name.toLowerCase().includes(needle) || j.id.includes(needle)) &&
      (!proj || (j.project || "").toLowerCase().includes(proj)));
    FF.fill(body, shown.map((j) => el("tr", { "data-job-id": j.id, "data-state": j.state },
      el("td", {}, el("a", { href: `/jobs/${j.id}`, text: j.name })),
      el("td", { class: "mono", text: j.id.slice(0, 8) }),
      el("td", { text: j.project || "" }),
      el("td", { title: j.waiting || "" }, FF.stateBadge(j.state),
        j.waiting ? el("div", { class: "waiting", text: j.waiting }) : ""),
      progressCell(j),
      el("td", { text: `${FF.position(j.progress.step, j.progress.steps_per_epoch).epoch || 1}`
        + ` / ${j.progress.epochs}` }),
      el("td", { class: "num", text: j.progress.total_steps
        ? `${j.progress.step} / ${j.progress.total_steps}` : String(j.progress.step) }),
      el("td", { class: "num", text: `${j.attempts} / ${j.max_attempts}` }),
      el("td", { text: FF.time(j.created_at) }),
    )), "No jobs match.", 9);
  }

  async function load() {
    const q = new URLSearchParams({ limit: String(limit) });
    if (state.value) q.set("state", state.value);
    const page = await FF.json(`/jobs?${q}`);
    jobs = page.jobs;
    more.hidden = !page.next || limit >= 500;
    render();
  }

  state.addEventListener("change", () => { keepInUrl(); load(); });
  text.addEventListener("input", () => { keepInUrl(); render(); });
  project.addEventListener("input", () => { keepInUrl(); render(); });
  document.getElementById("filters").addEventListener("submit", (e) => e.preventDefault());
  more.addEventListener("click", () => { limit = Math.min(500, limit + 100); load(); });
  FF.every(2000, load);
})();
