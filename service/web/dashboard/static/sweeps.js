// The sweep list: each sweep's state, objective, trials and best value, newest first.
"use strict";

(() => {
  const { el } = FF;
  const body = document.getElementById("sweeps-body");

  function row(s) {
    const done = Object.values(s.trial_counts).reduce((a, b) => a + b, 0);
    return el("tr", { "data-sweep-id": s.id, "data-state": s.state },
      el("td", {}, el("a", { href: `/sweeps/${s.id}`, text: s.name })),
      el("td", { class: "mono", text: s.id.slice(0, 8) }),
      el("td", { text: s.project }),
      el("td", {}, FF.stateBadge(s.state)),
      el("td", { text: `${s.objective.direction} ${s.objective.metric}` }),
      el("td", { class: "num", text: `${done} / ${s.max_trials}` }),
      el("td", { class: "num", text: s.best ? s.best.objective.toPrecision(5) : "–" }),
      el("td", { text: FF.time(s.created_at) }));
  }

  FF.every(3000, async () => {
    const page = await FF.json("/sweeps?limit=200");
    FF.fill(body, page.sweeps.map(row), "No sweeps yet.", 8);
  });
})();
