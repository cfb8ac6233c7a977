// The fleet page: queue depths from the broker and each worker's state, job and lease.
"use strict";

(() => {
  const { el } = FF;
  const showStopped = document.getElementById("show-stopped");
  let last = null;

  function render() {
    if (!last) return;
    FF.fill(document.querySelector("#queues-table tbody"), last.queues.map((q) =>
      el("tr", { "data-queue": q.name }, el("td", { class: "mono", text: q.name }),
        el("td", { class: "num", text: q.depth === null ? "?" : q.depth }),
        el("td", { class: "num", text: q.queued_jobs }), el("td", { class: "num", text: q.running_jobs }),
        el("td", { class: "num", text: q.workers }))), "No queue.", 5);
    const workers = last.workers.filter((w) => showStopped.checked || w.state !== "stopped");
    FF.fill(document.querySelector("#workers-table tbody"), workers.map((w) =>
      el("tr", { "data-worker": w.name, "data-state": w.state },
        el("td", { class: "mono", text: w.name }), el("td", { text: w.hostname }),
        el("td", { class: "num", text: w.pid }), el("td", {}, FF.stateBadge(w.state)),
        el("td", { class: "mono", text: w.queues.join(", ") }),
        el("td", {}, w.job_id ? el("a", { href: `/jobs/${w.job_id}`, class: "mono", text: w.job_id.slice(0, 8) }) : ""),
        el("td", { title: FF.time(w.lease_renewed_at), text: FF.ago(w.lease_renewed_at) }),
        el("td", { title: FF.time(w.heartbeat_at), text: FF.ago(w.heartbeat_at) }),
        el("td", { text: FF.time(w.started_at) }), el("td", { class: "num", text: w.gpus }))),
      "No worker has reported.", 10);
    document.getElementById("stale-note").textContent =
      `(lost when silent for more than ${last.stale_after_seconds} s)`;
  }

  showStopped.addEventListener("change", render);
  FF.every(2000, async () => { last = await FF.json("/fleet"); render(); });
})();
