// The job page's story: the event timeline, goodput and the workers' log lines, each
// polled with its cursor; goodput comes with the detail job.js polls (its "ff:detail").
"use strict";

(() => {
  const { el } = FF;
  const root = document.getElementById("job");
  const jobId = root.dataset.jobId;
  const ENDED = ["succeeded", "failed", "cancelled"];
  const PARTS = [  // [field, label, colour]
    ["training", "training", "#2ca02c"], ["redoing", "redoing", "#ff7f0e"],
    ["checkpoint_blocked", "blocked on checkpoints", "#9467bd"],
    ["validation", "validation", "#17becf"], ["starting", "starting", "#bcbd22"],
    ["queued", "queued", "#c7c7c7"], ["lost", "lost", "#d62728"],
  ];
  const SHOWN = {  // the data fields a timeline row shows, per type
    submitted: ["queue", "priority", "max_attempts"], queued: ["reason"],
    claimed: ["worker", "host", "gpus"],
    restored: ["step", "bytes", "fetch_seconds", "load_seconds"],
    checkpoint_skipped: ["step", "reason"], first_batch: ["step", "seconds"],
    checkpoint: ["step", "bytes", "blocked_seconds", "background_seconds"],
    validated: ["epoch", "seconds"], lease_lost: ["code", "message"], preempted: ["reason"],
    released: ["step"], requeued: ["after"], cancelled: ["while"],
    finished: ["state", "error_code", "error_message"],
  };
  const cursors = { events: null, logs: null };
  let state = null;
  let finalPolls = 2;

  function details(e) {
    const data = e.data || {};
    return (SHOWN[e.type] || Object.keys(data))
      .filter((k) => data[k] !== null && data[k] !== undefined)
      .map((k) => `${k}=${k === "bytes" ? FF.bytes(data[k]) : data[k]}`).join(" ");
  }

  async function page(kind, path, key, row) {
    const q = cursors[kind] === null ? "" : `${path.includes("?") ? "&" : "?"}after=${cursors[kind]}`;
    const body = await FF.json(`${path}${q}`);
    cursors[kind] = body.next;
    if (!body[key].length) return;
    const tbody = document.querySelector(`#${kind}-table tbody`);
    if (tbody.dataset.empty !== "0") tbody.replaceChildren();
    tbody.dataset.empty = "0";
    tbody.append(...body[key].map(row));
    tbody.parentElement.dataset.rows = String(tbody.children.length);
  }

  const eventRow = (e) => el("tr", { "data-type": e.type },
    el("td", { text: FF.time(e.at) }), el("td", { class: "num", text: e.attempt || "" }),
    el("td", {}, el("span", { class: `event event-${e.type}`, text: e.type })),
    el("td", { class: "small", text: details(e) }));

  const lineRow = (l) => el("tr", { "data-level": l.level },
    el("td", { text: FF.time(l.at) }), el("td", { class: "num", text: l.attempt }),
    el("td", { text: l.level }), el("td", { class: "mono", text: l.logger }),
    el("td", {}, el("pre", { class: "logline", text: l.message })));

  function showGoodput(g) {
    if (!g) return;
    const wall = g.wall_seconds || 0;
    const bar = document.getElementById("goodput-bar");
    bar.replaceChildren(...PARTS.filter(([k]) => g.seconds[k] > 0).map(([k, label, color]) =>
      el("span", { class: "part", "data-part": k, title: `${label}: ${FF.duration(g.seconds[k])}`,
        style: `width:${wall ? (100 * g.seconds[k]) / wall : 0}%;background:${color}` })));
    const share = g.goodput === null ? "–" : `${(100 * g.goodput).toFixed(1)}%`;
    document.getElementById("goodput-share").textContent =
      `goodput ${share} of ${FF.duration(wall)}; steps redone: ${g.steps_redone}`;
    FF.fill(document.querySelector("#goodput-table tbody"), PARTS.map(([k, label, color]) =>
      el("tr", { "data-part": k },
        el("td", {}, el("span", { class: "swatch", style: `background:${color}` }), ` ${label}`),
        el("td", { class: "num", text: g.seconds[k].toFixed(1) }),
        el("td", { class: "num", text: wall ? `${((100 * g.seconds[k]) / wall).toFixed(1)}%` : "" }))),
    "", 3);
  }

  document.addEventListener("ff:detail", (ev) => {
    state = ev.detail.job.state;
    showGoodput(ev.detail.goodput);
  });

  FF.every(2000, async () => {
    if (state && ENDED.includes(state)) {
      if (finalPolls <= 0) return;
      finalPolls -= 1;
    }
    await page("events", `/jobs/${jobId}/events`, "events", eventRow);
    await page("logs", `/jobs/${jobId}/logs`, "lines", lineRow);
  });
})();
