// The review page of `plastics serve`: data comes from /review/api/* as JSON and is put into the
// page with textContent and DOM nodes only (never parsed as HTML), so text from outside stays text.
"use strict";

(function () {
  const $ = (id) => document.getElementById(id);
  // absolute URLs on this origin: a page opened as http://user:password@host/... cannot fetch relative ones
  const here = (path) => window.location.origin + path;
  const state = { roi: null, margin: null, items: [], index: 0, verdicts: {}, map: null, layers: null };
  const COLOURS = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#17becf"];

  function el(tag, text, cls) {
    const node = document.createElement(tag);
    if (text !== undefined && text !== null) node.textContent = String(text);
    if (cls) node.className = cls;
    return node;
  }

  function clear(node) {
    while (node.firstChild) node.removeChild(node.firstChild);
  }

  function fmt(value, digits) {
    return typeof value === "number" && isFinite(value) ? value.toFixed(digits) : "–";
  }

  function setStatus(text) {
    $("status").textContent = text;
  }

  async function getJSON(url) {
    const response = await fetch(here(url), { headers: { Accept: "application/json" }, credentials: "same-origin" });
    const body = await response.json().catch(() => ({}));
    if (!response.ok) throw new Error(body.detail || "HTTP " + response.status);
    return body;
  }

  function query(params) {
    return new URLSearchParams(params).toString();
  }

  // ---- ROI selection and queue -------------------------------------------------------------------

  async function loadRois() {
    const params = new URLSearchParams(window.location.search);
    state.margin = params.get("margin");
    const data = await getJSON("/review/api/rois" + (state.margin ? "?" + query({ margin: state.margin }) : ""));
    const select = $("roi-select");
    clear(select);
    for (const roi of data.rois) {
      const option = el("option", roi.roi + " (" + roi.queue + " to review" + (roi.synthetic ? ", synthetic demo" : "") + ")");
      option.value = roi.roi;
      select.appendChild(option);
    }
    const wanted = params.get("roi");
    const first = data.rois.find((r) => r.roi === wanted) || data.rois.find((r) => r.queue > 0) || data.rois[0];
    if (!first) {
      $("empty-message").textContent = "No site is published yet: run `plastics demo` or materialize published_sites.";
      $("empty-message").hidden = false;
      return;
    }
    select.value = first.roi;
    await loadQueue(first.roi);
  }

  async function loadQueue(roi) {
    state.roi = roi;
    $("login-link").href = "/review/login?" + query({ roi: roi });
    const params = { roi: roi };
    if (state.margin) params.margin = state.margin;
    const data = await getJSON("/review/api/queue?" + query(params));
    state.items = data.queue;
    state.index = 0;
    state.verdicts = {};
    $("synthetic-banner").hidden = !data.synthetic;
    renderReviewed(data.reviewed);
    renderQueue();
    if (state.items.length) {
      await showSite(0);
    } else {
      $("site").hidden = true;
      $("empty-message").hidden = false;
    }
  }

  function renderQueue() {
    const list = $("queue-list");
    clear(list);
    state.items.forEach((item, i) => {
      const li = el("li");
      li.dataset.siteId = item.site_id;
      li.appendChild(el("span", item.site_id + " · " + fmt(item.score, 3)));
      const verdict = state.verdicts[item.site_id];
      if (verdict) li.appendChild(el("span", " · " + verdict, "v-" + verdict));
      if (item.reason !== "unreviewed") li.appendChild(el("span", " · re-queued"));
      if (i === state.index) li.classList.add("current");
      li.addEventListener("click", () => showSite(i));
      list.appendChild(li);
    });
    const open = state.items.filter((item) => !state.verdicts[item.site_id]).length;
    $("queue-count").textContent = open + " of " + state.items.length + " left to review in " + state.roi;
  }

  function renderReviewed(reviewed) {
    const list = $("reviewed-list");
    clear(list);
    for (const item of reviewed) {
      const li = el("li");
      li.dataset.siteId = item.site_id;
      li.appendChild(el("span", item.site_id + " · "));
      li.appendChild(el("span", item.latest.verdict, "v-" + item.latest.verdict));
      li.appendChild(el("span", " by " + item.latest.reviewer));
      if (item.latest.note) li.appendChild(el("span", " · " + item.latest.note, "note"));
      list.appendChild(li);
    }
  }

  // ---- one site ------------------------------------------------------------------------------------

  async function showSite(i) {
    if (i < 0 || i >= state.items.length) return;
    state.index = i;
    renderQueue();
    const item = state.items[i];
    $("empty-message").hidden = true;
    $("site").hidden = false;
    $("site-title").textContent = "Site " + item.site_id;
    $("site-reason").textContent = item.reason === "unreviewed" ? "Not reviewed yet." : "Back in the queue: " + item.reason + ".";
    $("site-address").textContent = item.address || "(no address)";
    $("note").value = "";
    setStatus("");
    const facts = $("site-facts");
    clear(facts);
    const rows = [
      ["pixel score", fmt(item.score, 3)], ["patch score", fmt(item.patch, 3)],
      ["area (km²)", fmt(item.area_km2, 4)], ["status", item.status],
      ["first window", item.first_window], ["last window", item.last_window],
      ["windows", item.n_windows], ["lat, lon", fmt(item.lat, 5) + ", " + fmt(item.lon, 5)],
    ];
    for (const [key, value] of rows) {
      facts.appendChild(el("dt", key));
      facts.appendChild(el("dd", value));
    }
    let detail;
    try {
      detail = await getJSON("/review/api/site?" + query({ roi: state.roi, site_id: item.site_id }));
    } catch (err) {
      setStatus("Could not load the site: " + err.message);
      return;
    }
    if (state.items[state.index] !== item) return; // the reviewer moved on meanwhile
    renderChips(detail);
    renderSeries(detail);
    renderHistory(detail.history);
    renderMap(item, detail);
  }

  function renderChips(detail) {
    const box = $("chips");
    clear(box);
    $("chips-note").textContent = detail.chips_note || (detail.chips.length ? "" : "The store holds no heatmap of this site's run.");
    const byWindow = {};
    for (const chip of detail.chips) (byWindow[chip.label] = byWindow[chip.label] || {})[chip.kind] = chip.url;
    for (const window of Object.keys(byWindow).sort()) {
      const fig = el("figure", null, "chip-window");
      const pair = el("div", null, "chip-pair");
      for (const kind of ["truecolor", "heatmap"]) {
        const url = byWindow[window][kind];
        if (!url) continue;
        const img = el("img");
        img.alt = (kind === "truecolor" ? "true colour " : "heatmap ") + window;
        img.title = img.alt;
        img.addEventListener("error", () => {
          const missing = el("span", kind === "truecolor" ? "no true-colour composite stored" : "no heatmap", "chip-missing");
          img.replaceWith(missing);
        });
        img.src = here(url);
        pair.appendChild(img);
      }
      fig.appendChild(pair);
      fig.appendChild(el("figcaption", window));
      box.appendChild(fig);
    }
  }

  function renderSeries(detail) {
    const body = $("series").querySelector("tbody");
    clear(body);
    const keys = new Set([...Object.keys(detail.pixel_scores), ...Object.keys(detail.areas_km2)]);
    for (const key of [...keys].sort()) {
      const tr = el("tr");
      tr.appendChild(el("td", key));
      tr.appendChild(el("td", fmt(detail.pixel_scores[key], 3)));
      tr.appendChild(el("td", fmt(detail.patch_scores[key], 3)));
      tr.appendChild(el("td", fmt(detail.areas_km2[key], 4)));
      body.appendChild(tr);
    }
  }

  function renderHistory(history) {
    const list = $("history");
    clear(list);
    if (!history.length) list.appendChild(el("li", "no verdict yet"));
    for (const v of history) {
      const li = el("li");
      li.appendChild(el("span", v.created_at.slice(0, 19).replace("T", " ") + " · "));
      li.appendChild(el("strong", v.verdict, "v-" + v.verdict));
      li.appendChild(el("span", " by " + v.reviewer + " at score " + fmt(v.score, 3)));
      if (v.note) li.appendChild(el("span", " · " + v.note, "note"));
      list.appendChild(li);
    }
  }

  function renderMap(item, detail) {
    if (typeof L === "undefined") return;
    if (!state.map) {
      state.map = L.map("map", { attributionControl: false });
      state.layers = L.layerGroup().addTo(state.map);
    }
    state.layers.clearLayers();
    const bounds = detail.chip_bounds;
    if (bounds) {
      const latest = detail.chips.filter((c) => c.kind === "truecolor").pop();
      const heat = detail.chips.filter((c) => c.kind === "heatmap").pop();
      const box = [[bounds[1], bounds[0]], [bounds[3], bounds[2]]];
      if (heat) L.imageOverlay(here(heat.url), box, { opacity: 0.9 }).addTo(state.layers);
      if (latest) L.imageOverlay(here(latest.url), box, { opacity: 1.0 }).addTo(state.layers);
    }
    const dates = [...new Set(detail.contours.features.map((f) => f.properties.date))].sort();
    const outlines = L.geoJSON(detail.contours, {
      style: (f) => ({ color: COLOURS[dates.indexOf(f.properties.date) % COLOURS.length], weight: 2, fill: false }),
    }).addTo(state.layers);
    L.circleMarker([item.lat, item.lon], { radius: 6, color: "#00e5ff", weight: 2 }).addTo(state.layers);
    const extent = outlines.getBounds();
    if (bounds) {
      state.map.fitBounds([[bounds[1], bounds[0]], [bounds[3], bounds[2]]]);
    } else if (extent.isValid()) {
      state.map.fitBounds(extent.pad(0.5));
    } else {
      state.map.setView([item.lat, item.lon], 15);
    }
  }

  // ---- verdicts ----------------------------------------------------------------------------------

  async function record(verdict) {
    const item = state.items[state.index];
    if (!item) return;
    setStatus("saving " + verdict + "…");
    const response = await fetch(here("/review/api/verdicts"), {
      method: "POST",
      credentials: "same-origin",
      headers: { "Content-Type": "application/json", Accept: "application/json" },
      body: JSON.stringify({ roi: state.roi, site_id: item.site_id, verdict: verdict, note: $("note").value }),
    });
    const body = await response.json().catch(() => ({}));
    if (!response.ok) {
      setStatus((body.detail || "HTTP " + response.status) + (response.status === 401 ? " Use “sign in” above." : ""));
      return;
    }
    state.verdicts[item.site_id] = verdict;
    setStatus(verdict + " recorded for " + item.site_id + " by " + body.reviewer);
    const next = state.items.findIndex((it, i) => i > state.index && !state.verdicts[it.site_id]);
    if (next >= 0) {
      await showSite(next);
      setStatus(verdict + " recorded for " + item.site_id + " by " + body.reviewer);
    } else {
      renderQueue();
      const detail = await getJSON("/review/api/site?" + query({ roi: state.roi, site_id: item.site_id }));
      renderHistory(detail.history);
    }
  }

  function onKey(event) {
    const typing = event.target === $("note");
    if (typing) {
      if (event.key === "Escape") $("note").blur();
      return;
    }
    if (event.ctrlKey || event.metaKey || event.altKey) return;
    const actions = {
      c: () => record("confirm"), r: () => record("reject"), u: () => record("unsure"),
      n: () => showSite(state.index + 1), j: () => showSite(state.index + 1), ArrowRight: () => showSite(state.index + 1),
      p: () => showSite(state.index - 1), k: () => showSite(state.index - 1), ArrowLeft: () => showSite(state.index - 1),
      e: () => $("note").focus(),
    };
    const action = actions[event.key];
    if (action) {
      event.preventDefault();
      action();
    }
  }

  function start() {
    $("btn-confirm").addEventListener("click", () => record("confirm"));
    $("btn-reject").addEventListener("click", () => record("reject"));
    $("btn-unsure").addEventListener("click", () => record("unsure"));
    $("btn-next").addEventListener("click", () => showSite(state.index + 1));
    $("btn-prev").addEventListener("click", () => showSite(state.index - 1));
    $("roi-select").addEventListener("change", (event) => loadQueue(event.target.value));
    document.addEventListener("keydown", onKey);
    loadRois().catch((err) => {
      $("empty-message").textContent = "Could not load the review queue: " + err.message;
      $("empty-message").hidden = false;
    });
  }

  start();
})();
