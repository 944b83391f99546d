// The registry map page: follows /v1/events, lays the graph out with
// Graphviz (viz-global.js, WebAssembly), and keeps the table, the root
// causes and the SVG current without reloading. Everything shown comes
// from the registry and is inserted as text, never as HTML.
"use strict";

(function () {
  const state = {
    data: null, // the latest /v1/graph payload
    users: new Map(), // service → services that depend on it
    focus: null, // service hovered or selected
    selected: null, // service clicked (pinned)
    seq: 0, // render sequence, so a slow layout never overwrites a newer one
  };
  // For tests and the curious: what the page is showing.
  window.rewireMap = { rev: 0, updates: 0, rendered: 0 };
  const vizReady = Viz.instance();

  function el(tag, attrs, ...children) {
    const e = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (k === "class") e.className = v;
      else e.setAttribute(k, v);
    }
    for (const c of children) {
      if (c === null || c === undefined) continue;
      e.append(typeof c === "string" || typeof c === "number" ? String(c) : c);
    }
    return e;
  }

  function setStatus(cls, text) {
    const s = document.getElementById("status");
    s.className = "status " + cls;
    s.textContent = text;
  }

  function counts(c) {
    const parts = [];
    if (c.passing) parts.push(c.passing + " passing");
    if (c.warning) parts.push(c.warning + " warning");
    if (c.critical) parts.push(c.critical + " critical");
    return parts.join(", ") || "–";
  }

  // impactOf returns every service that depends on name, directly or not.
  function impactOf(name) {
    const seen = new Set();
    const stack = [name];
    while (stack.length) {
      for (const u of state.users.get(stack.pop()) || []) {
        if (!seen.has(u)) {
          seen.add(u);
          stack.push(u);
        }
      }
    }
    seen.delete(name);
    return seen;
  }

  function renderCauses() {
    const box = document.getElementById("causes");
    box.replaceChildren();
    const d = state.data;
    if (d.roots.length === 0) {
      const bad = d.nodes.filter((n) => !n.healthy).length;
      box.append(el("div", { class: "ok" }, bad === 0 ? "Every service is healthy." : "No root cause found."));
    }
    for (const r of d.roots) {
      const waiting = r.waiting.length;
      const head = waiting === 0 ? `${r.service} is a root cause` :
        `${waiting} service${waiting === 1 ? "" : "s"} wait${waiting === 1 ? "s" : ""} on ${r.service}`;
      box.append(el("div", { class: "cause", "data-root": r.service },
        el("strong", {}, head), ": ", r.reason,
        waiting ? el("div", { class: "muted" }, "waiting: " + r.waiting.join(", ")) : null));
    }
    for (const c of d.cycles) {
      box.append(el("div", { class: "cycle" }, "dependency cycle: " + c.concat([c[0]]).join(" → ")));
    }
  }

  function renderTable() {
    const body = document.querySelector("#services tbody");
    body.replaceChildren();
    for (const n of state.data.nodes) {
      const maint = n.in_maintenance ? "service: " + (n.maintenance_reason || "(no reason)") : (n.maintenance ? String(n.maintenance) : "");
      const row = el("tr", { class: "svc", "data-service": n.name, "data-state": n.state },
        el("td", {}, el("strong", {}, n.name)),
        el("td", {}, el("span", { class: "state " + n.state }, n.state)),
        el("td", {}, n.missing ? "–" : `${n.routable}/${n.instances}`),
        el("td", {}, n.expect ? `${n.instances} of ${n.expect}` : ""),
        el("td", {}, counts(n.shallow)),
        el("td", {}, counts(n.deep)),
        el("td", {}, maint),
        el("td", {}, n.draining ? String(n.draining) : ""),
        el("td", {}, n.depends_on.join(", ")),
        el("td", {}, n.reason || ""));
      row.addEventListener("click", () => select(n.name));
      row.addEventListener("mouseenter", () => hover(n.name));
      row.addEventListener("mouseleave", () => hover(null));
      body.append(row);
    }
  }

  async function renderGraph(seq) {
    const viz = await vizReady;
    if (seq !== state.seq) return;
    const box = document.getElementById("graph");
    let svg;
    try {
      svg = viz.renderSVGElement(state.data.dot, { engine: state.data.engine || "dot" });
    } catch (err) {
      box.replaceChildren(el("p", { class: "muted" }, "layout failed: " + err));
      return;
    }
    for (const g of svg.querySelectorAll("g.node")) {
      const name = g.id.replace(/^svc-/, "");
      g.addEventListener("mouseenter", () => hover(name));
      g.addEventListener("mouseleave", () => hover(null));
      g.addEventListener("click", () => select(name));
    }
    box.replaceChildren(svg);
    applyFocus();
    window.rewireMap.rendered = state.data.rev;
  }

  function applyFocus() {
    const name = state.focus;
    const impacted = name ? impactOf(name) : new Set();
    const box = document.getElementById("graph");
    box.classList.toggle("focusing", name !== null);
    for (const g of box.querySelectorAll("g.node")) {
      const n = g.id.replace(/^svc-/, "");
      g.classList.toggle("focus", n === name);
      g.classList.toggle("impacted", impacted.has(n));
    }
    for (const e of state.data.edges) {
      const g = document.getElementById(`dep-${e.from}-${e.to}`);
      if (g) g.classList.toggle("impacted", impacted.has(e.from) && (impacted.has(e.to) || e.to === name));
    }
    for (const row of document.querySelectorAll("#services tr.svc")) {
      row.classList.toggle("focus", row.dataset.service === name);
      row.classList.toggle("impacted", impacted.has(row.dataset.service));
    }
  }

  function hover(name) {
    state.focus = name !== null ? name : state.selected;
    applyFocus();
  }

  async function select(name) {
    state.selected = state.selected === name ? null : name;
    state.focus = state.selected;
    applyFocus();
    await renderDetails();
  }

  async function renderDetails() {
    const box = document.getElementById("details");
    const name = state.selected;
    if (name === null) {
      box.hidden = true;
      return;
    }
    const resp = await fetch("v1/why/" + encodeURIComponent(name));
    const d = await resp.json();
    if (state.selected !== name) return;
    box.replaceChildren(el("h2", {}, name), el("p", {}, d.summary || d.error || ""));
    const impact = [...impactOf(name)].sort();
    box.append(el("p", {}, impact.length ? `If ${name} stops, ${impact.length} service${impact.length === 1 ? "" : "s"} are affected: ${impact.join(", ")}` :
      `Nothing depends on ${name}.`));
    for (const r of d.roots || []) {
      box.append(el("h3", {}, "root cause: " + r.service), el("p", {}, r.chain.join(" → ") + " — " + r.reason));
      for (const c of r.failing_checks || []) {
        box.append(el("pre", {}, `${c.instance} ${c.check} (${c.kind}) ${c.status}: ${c.output}`));
      }
    }
    box.hidden = false;
  }

  function show(data) {
    state.data = data;
    state.users = new Map();
    for (const e of data.edges) {
      if (!state.users.has(e.to)) state.users.set(e.to, []);
      state.users.get(e.to).push(e.from);
    }
    if (state.selected && !data.nodes.some((n) => n.name === state.selected)) state.selected = null;
    if (state.focus && !data.nodes.some((n) => n.name === state.focus)) state.focus = state.selected;
    renderCauses();
    renderTable();
    window.rewireMap.rev = data.rev;
    window.rewireMap.updates++;
    setStatus("live", `live · revision ${data.rev} · ${data.nodes.length} services · updated ${new Date().toLocaleTimeString()}`);
    state.seq++;
    renderGraph(state.seq).catch((err) => setStatus("lost", "layout failed: " + err));
    renderDetails().catch(() => {});
  }

  const events = new EventSource("v1/events");
  events.addEventListener("graph", (e) => show(JSON.parse(e.data)));
  events.addEventListener("open", () => {
    if (!state.data) setStatus("connecting", "connected, waiting for the registry…");
  });
  events.addEventListener("error", () => setStatus("lost", "connection lost; retrying…"));
})();
