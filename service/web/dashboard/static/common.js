// Shared by the dashboard pages: API calls with the tab's token, formatting, small DOM helpers.
"use strict";

const FF = (() => {
  const KEY = "fitfleet.token";
  const API = "/api/v1";
  let asking = null;

  function token() { return sessionStorage.getItem(KEY); }

  // Show the token dialog once; every caller waiting for a token gets the same answer.
  function askToken() {
    if (asking) return asking;
    const dialog = document.getElementById("token-dialog");
    const form = document.getElementById("token-form");
    const input = document.getElementById("token-input");
    asking = new Promise((resolve) => {
      form.addEventListener("submit", () => {
        const value = input.value.trim();
        if (value) sessionStorage.setItem(KEY, value);
        input.value = "";
        asking = null;
        resolve(value);
      }, { once: true });
      if (!dialog.open) dialog.showModal();
      input.focus();
    });
    return asking;
  }

  // fetch() under /api/v1 with "Authorization: Bearer <token>"; asks for a token on 401.
  async function api(path, options = {}) {
    for (let attempt = 0; attempt < 5; attempt++) {
      const headers = Object.assign({}, options.headers || {});
      const t = token();
      if (t) headers.Authorization = "Bearer " + t;
      const response = await fetch(API + path,
        Object.assign({ cache: "no-store" }, options, { headers }));
      if (response.status !== 401) return response;
      sessionStorage.removeItem(KEY);
      await askToken();
    }
    throw new Error("the API refused every token given");
  }

  async function json(path, options) {
    const response = await api(path, options);
    const body = await response.json().catch(() => null);
    if (!response.ok) {
      const err = (body && body.error) || {};
      throw new Error(`${response.status} ${err.code || ""}: ${err.message || response.statusText}`);
    }
    return body;
  }

  // Fetch a file with the token and hand it to the browser as a download.
  async function download(path, fallbackName) {
    const response = await api(path);
    if (!response.ok) { notice(`Download failed (${response.status})`); return; }
    const disposition = response.headers.get("Content-Disposition") || "";
    const match = /filename="?([^";]+)"?/.exec(disposition);
    const url = URL.createObjectURL(await response.blob());
    const a = el("a", { href: url, download: match ? match[1] : fallbackName });
    document.body.appendChild(a);
    a.click();
    a.remove();
    setTimeout(() => URL.revokeObjectURL(url), 10000);
  }

  function el(tag, attrs, ...children) {
    const node = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v === null || v === undefined || v === false) continue;
      if (k === "class") node.className = v;
      else if (k === "text") node.textContent = v;
      else if (k.startsWith("on")) node.addEventListener(k.slice(2), v);
      else node.setAttribute(k, v);
    }
    for (const c of children) {
      if (c === null || c === undefined) continue;
      node.appendChild(typeof c === "string" || typeof c === "number"
        ? document.createTextNode(String(c)) : c);
    }
    return node;
  }

  function fill(tbody, rows, empty, columns) {
    tbody.replaceChildren(...(rows.length ? rows
      : [el("tr", {}, el("td", { colspan: columns, class: "muted", text: empty }))]));
  }

  function time(iso) {
    if (!iso) return "";
    const d = new Date(iso);
    return d.toLocaleString(undefined, { dateStyle: "short", timeStyle: "medium" });
  }

  function ago(iso) {
    if (!iso) return "";
    const s = Math.max(0, (Date.now() - new Date(iso).getTime()) / 1000);
    if (s < 90) return `${Math.round(s)} s ago`;
    if (s < 5400) return `${Math.round(s / 60)} min ago`;
    return `${Math.round(s / 3600)} h ago`;
  }

  function duration(seconds) {
    if (seconds === null || seconds === undefined) return "–";
    const s = Math.round(seconds);
    if (s < 60) return `${s} s`;
    if (s < 3600) return `${Math.floor(s / 60)} min ${s % 60} s`;
    return `${Math.floor(s / 3600)} h ${Math.floor((s % 3600) / 60)} min`;
  }

  // A place in training as Keras numbers it, from the steps done: 130 steps of 26 an epoch
  // is "Epoch 5/5 26/26 (step 130)". The same rule as fitfleet.progress.position.
  function position(step, stepsPerEpoch, epochs) {
    step = step || 0;
    const total = epochs || "?";
    if (!stepsPerEpoch) return { epoch: null, batch: null, text: `Epoch ?/${total} (step ${step})` };
    const epoch = Math.max(1, Math.ceil(step / stepsPerEpoch));
    const batch = step - (epoch - 1) * stepsPerEpoch;
    return { epoch, batch, text: `Epoch ${epoch}/${total} ${batch}/${stepsPerEpoch} (step ${step})` };
  }

  function bytes(n) {
    if (n === null || n === undefined) return "";
    const units = ["B", "KB", "MB", "GB", "TB"];
    let i = 0;
    while (n >= 1024 && i < units.length - 1) { n /= 1024; i++; }
    return `${n.toFixed(i ? 1 : 0)} ${units[i]}`;
  }

  function stateBadge(state) {
    return el("span", { class: `state state-${state}`, text: state });
  }

  function notice(message) {
    const box = document.getElementById("notice");
    box.textContent = message || "";
    box.hidden = !message;
  }

  // Run fn now and every `ms` milliseconds after it settles; returns a stop function.
  function every(ms, fn) {
    let stopped = false;
    let timer = null;
    const tick = async () => {
      try { await fn(); notice(""); } catch (e) { notice(String(e.message || e)); }
      if (!stopped) timer = setTimeout(tick, ms);
    };
    tick();
    return () => { stopped = true; clearTimeout(timer); };
  }

  document.getElementById("forget-token").addEventListener("click", () => {
    sessionStorage.removeItem(KEY);
    askToken().then(() => location.reload());
  });

  return { api, json, download, el, fill, time, ago, duration, bytes, stateBadge, notice,
           every, token, position };
})();
