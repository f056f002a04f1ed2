// geocell game page: plain JavaScript, no library, everything from this server.
"use strict";

(function () {
  const W = 3600, H = 1800;              // map view box: 10 units per degree (see worldmap.py)
  const $ = (id) => document.getElementById(id);
  const SVGNS = "http://www.w3.org/2000/svg";

  const state = {
    info: null, game: null, rounds: 0, round: 0, pin: null, picks: [], busy: false,
    view: { x: 0, y: 0, w: W, h: H }, marks: [], results: [], dragging: null,
  };
  let svg = null;

  // ------------------------------------------------------------------ helpers
  async function api(method, url, body) {
    const opts = { method, headers: {} };
    if (body !== undefined) {
      opts.headers["Content-Type"] = "application/json";
      opts.body = JSON.stringify(body);
    }
    const res = await fetch(url, opts);
    let data = null;
    try { data = await res.json(); } catch (e) { data = null; }
    if (!res.ok) {
      throw new Error((data && data.error) || ("HTTP " + res.status));
    }
    return data;
  }
  function showError(err) {
    const box = $("error");
    box.textContent = err ? String(err.message || err) : "";
    box.hidden = !err;
  }
  const fmtInt = (v) => (v === null || v === undefined) ? "" : Math.round(v).toLocaleString("en-US");
  const fmtKm = (v) => (v === null || v === undefined) ? "" : fmtInt(v) + " km";
  const fmtLat = (lat) => Math.abs(lat).toFixed(2) + "°" + (lat >= 0 ? "N" : "S");
  const fmtLon = (lon) => Math.abs(lon).toFixed(2) + "°" + (lon >= 0 ? "E" : "W");
  const nameOf = (code) => (state.names && state.names[code]) || code;
  function cell(row, text, cls) {
    const td = document.createElement("td");
    td.textContent = text;
    if (cls) td.className = cls;
    row.appendChild(td);
    return td;
  }

  // ------------------------------------------------------------------ map
  async function loadMap() {
    const res = await fetch("/map.svg");
    if (!res.ok) throw new Error("the map did not load (HTTP " + res.status + ")");
    $("map").innerHTML = await res.text();
    svg = $("map").querySelector("svg");
    svg.addEventListener("click", onMapClick);
    svg.addEventListener("mousemove", onMapHover);
    svg.addEventListener("mouseleave", () => { $("hover-name").textContent = "\u00a0"; });
    svg.addEventListener("wheel", onWheel, { passive: false });
    svg.addEventListener("mousedown", (e) => {
      state.dragging = { x: e.clientX, y: e.clientY, view: Object.assign({}, state.view), moved: false };
    });
    window.addEventListener("mousemove", onDrag);
    window.addEventListener("mouseup", () => { setTimeout(() => { state.dragging = null; }, 0); });
    $("reset-zoom").addEventListener("click", () => setView({ x: 0, y: 0, w: W, h: H }));
  }
  function svgPoint(e) {
    const pt = svg.createSVGPoint();
    pt.x = e.clientX; pt.y = e.clientY;
    return pt.matrixTransform(svg.getScreenCTM().inverse());
  }
  const toLatLon = (p) => ({
    lat: Math.max(-90, Math.min(90, 90 - p.y / 10)),
    lon: Math.max(-180, Math.min(180, p.x / 10 - 180)),
  });
  const toXY = (lat, lon) => ({ x: (lon + 180) * 10, y: (90 - lat) * 10 });
  function countryAt(e) {
    const t = e.target;
    return (t && t.dataset && t.dataset.code) ? { code: t.dataset.code, name: t.dataset.name } : null;
  }
  function onMapHover(e) {
    const c = countryAt(e);
    const p = toLatLon(svgPoint(e));
    $("hover-name").textContent = (c ? c.name + " · " : "") + fmtLat(p.lat) + " " + fmtLon(p.lon);
  }
  function onMapClick(e) {
    if (state.dragging && state.dragging.moved) return;
    if (!state.game || state.busy || !$("result").hidden) return;
    const p = toLatLon(svgPoint(e));
    const c = countryAt(e);
    state.pin = { lat: p.lat, lon: p.lon, country: c };
    renderPin();
  }
  function setView(v) {
    const w = Math.max(120, Math.min(W, v.w)), h = w * H / W;
    const x = Math.max(0, Math.min(W - w, v.x)), y = Math.max(0, Math.min(H - h, v.y));
    state.view = { x, y, w, h };
    svg.setAttribute("viewBox", `${x} ${y} ${w} ${h}`);
    drawMarks();
  }
  function onWheel(e) {
    e.preventDefault();
    if (!e.deltaY) return;
    const p = svgPoint(e), v = state.view;
    const f = e.deltaY < 0 ? 1 / 1.4 : 1.4;
    const w = Math.max(120, Math.min(W, v.w * f));
    const k = w / v.w;
    setView({ x: p.x - (p.x - v.x) * k, y: p.y - (p.y - v.y) * k, w });
  }
  function onDrag(e) {
    const d = state.dragging;
    if (!d) return;
    const dx = e.clientX - d.x, dy = e.clientY - d.y;
    if (!d.moved && Math.hypot(dx, dy) < 5) return;
    d.moved = true;
    const scale = d.view.w / svg.getBoundingClientRect().width;
    setView({ x: d.view.x - dx * scale, y: d.view.y - dy * scale, w: d.view.w });
  }
  // marks: {kind: "pin" | "truth" | "model" | "line-pin" | "line-model", lat, lon, lat2, lon2}
  function drawMarks() {
    const g = $("marks");
    if (!g) return;
    while (g.firstChild) g.removeChild(g.firstChild);
    const px = svg.getBoundingClientRect().width || 1000;
    const r = 6 * state.view.w / px;                // about 6 px whatever the zoom
    for (const m of state.marks) {
      if (m.kind.startsWith("line")) {
        const a = toXY(m.lat, m.lon), b = toXY(m.lat2, m.lon2);
        const el = document.createElementNS(SVGNS, "line");
        el.setAttribute("x1", a.x); el.setAttribute("y1", a.y);
        el.setAttribute("x2", b.x); el.setAttribute("y2", b.y);
        el.setAttribute("class", "mark " + m.kind);
        g.appendChild(el);
      }
    }
    for (const m of state.marks) {
      if (m.kind.startsWith("line")) continue;
      const a = toXY(m.lat, m.lon);
      const el = document.createElementNS(SVGNS, "circle");
      el.setAttribute("cx", a.x); el.setAttribute("cy", a.y);
      el.setAttribute("r", m.kind === "truth" ? r * 1.15 : r);
      el.setAttribute("class", "mark " + m.kind);
      el.setAttribute("id", "mark-" + m.kind);
      g.appendChild(el);
    }
  }
  function markCountries(cls, codes) {
    svg.querySelectorAll("path." + cls).forEach((p) => p.classList.remove(cls));
    for (const code of codes) {
      svg.querySelectorAll(`path[data-code="${code}"]`).forEach((p) => p.classList.add(cls));
    }
  }

  // ------------------------------------------------------------------ picks and pin
  function renderPicks() {
    const ol = $("picks");
    ol.textContent = "";
    state.picks.forEach((code, i) => {
      const li = document.createElement("li");
      li.dataset.code = code;
      li.appendChild(document.createTextNode(nameOf(code) + " "));
      const rm = document.createElement("button");
      rm.type = "button"; rm.className = "remove secondary"; rm.textContent = "×";
      rm.title = "remove " + nameOf(code);
      rm.addEventListener("click", () => { state.picks.splice(i, 1); renderPicks(); });
      li.appendChild(rm);
      ol.appendChild(li);
    });
    const full = state.picks.length >= state.info.max_picks;
    $("country-input").disabled = full || !$("result").hidden;
    $("add-country").disabled = full || !$("result").hidden;
    updateGuessButton();
  }
  function resolveCountry(text) {
    const t = text.trim().toLowerCase();
    if (!t) return null;
    for (const [code, name] of state.info.countries) {
      if (t === code.toLowerCase() || t === name.toLowerCase() || t === (name + " (" + code + ")").toLowerCase()) return code;
    }
    const starts = state.info.countries.filter(([, name]) => name.toLowerCase().startsWith(t));
    return starts.length === 1 ? starts[0][0] : null;
  }
  function addCountry() {
    showError(null);
    const input = $("country-input");
    const code = resolveCountry(input.value);
    if (!code) { showError(new Error(`"${input.value}" is not a country in the list`)); return; }
    if (state.picks.includes(code)) { showError(new Error(nameOf(code) + " is already picked")); return; }
    if (state.picks.length >= state.info.max_picks) return;
    state.picks.push(code);
    input.value = "";
    renderPicks();
  }
  function renderPin() {
    state.marks = state.pin ? [{ kind: "pin", lat: state.pin.lat, lon: state.pin.lon }] : [];
    drawMarks();
    $("pin-line").textContent = state.pin
      ? `Pin: ${fmtLat(state.pin.lat)} ${fmtLon(state.pin.lon)}` + (state.pin.country ? ` (${state.pin.country.name})` : " (sea)")
      : "No pin yet: click the map.";
    updateGuessButton();
  }
  function updateGuessButton() {
    $("guess-button").disabled = state.busy || !$("result").hidden || (!state.pin && state.picks.length === 0);
  }

  // ------------------------------------------------------------------ game flow
  async function start(e) {
    e.preventDefault();
    showError(null);
    const name = $("player-name").value;
    try {
      const g = await api("POST", "/api/games", { player: name });
      state.game = g.game; state.rounds = g.rounds; state.round = 0; state.results = [];
      $("start").hidden = true; $("summary").hidden = true;
      $("board").hidden = false;
      await nextRound();
    } catch (err) { showError(err); }
  }
  async function nextRound() {
    showError(null);
    state.round += 1;
    state.pin = null; state.picks = []; state.marks = [];
    markCountries("truth", []); markCountries("picked", []); markCountries("model-pick", []);
    $("result").hidden = true; $("result").textContent = "";
    $("next-button").hidden = true;
    const r = await api("GET", `/api/games/${state.game}/rounds/${state.round}`);
    const img = $("round-image");
    img.classList.toggle("pixelated", !!r.pixelated);
    img.src = r.image;
    $("caption").textContent = r.caption;
    $("round-title").textContent = `Round ${r.round} of ${r.rounds}`;
    renderPin(); renderPicks(); updateStatus();
    $("game").dataset.round = String(r.round);
    $("game").dataset.phase = "guess";
  }
  async function guess() {
    if (state.busy) return;
    showError(null);
    state.busy = true; updateGuessButton();
    const body = { countries: state.picks.slice() };
    if (state.pin) { body.lat = state.pin.lat; body.lon = state.pin.lon; }
    try {
      const res = await api("POST", `/api/games/${state.game}/rounds/${state.round}/guess`, body);
      state.results.push(res);
      reveal(res);
    } catch (err) { showError(err); }
    state.busy = false; updateGuessButton();
  }
  function reveal(res) {
    const t = res.truth, g = res.guess, m = res.model;
    state.marks = [];
    if (g.lat !== null) {
      state.marks.push({ kind: "line-pin", lat: t.lat, lon: t.lon, lat2: g.lat, lon2: g.lon });
      state.marks.push({ kind: "pin", lat: g.lat, lon: g.lon });
    }
    if (m) {
      state.marks.push({ kind: "line-model", lat: t.lat, lon: t.lon, lat2: m.lat, lon2: m.lon });
      state.marks.push({ kind: "model", lat: m.lat, lon: m.lon });
    }
    state.marks.push({ kind: "truth", lat: t.lat, lon: t.lon });
    drawMarks();
    markCountries("truth", t.country ? [t.country] : []);
    markCountries("picked", g.countries.map((c) => c.code));
    markCountries("model-pick", m && m.countries.length ? [m.countries[0].code] : []);

    const box = $("result");
    box.textContent = "";
    const line = (text, cls) => { const p = document.createElement("p"); p.textContent = text; if (cls) p.className = cls; box.appendChild(p); return p; };
    line(`True place: ${t.name}, ${fmtLat(t.lat)} ${fmtLon(t.lon)}`, "truth-line");
    if (g.lat !== null) {
      const p = line(`Your pin: ${fmtKm(g.distance_km)} away, ${fmtInt(g.score)} points`, "you-line");
      p.id = "round-score"; p.dataset.score = String(Math.round(g.score));
    } else {
      const p = line("No pin: 0 points", "you-line");
      p.id = "round-score"; p.dataset.score = "0";
    }
    if (g.countries.length) {
      const hit = g.top ? `the true country is your pick ${g.countries.findIndex((c) => c.code === t.country) + 1}` : "the true country is not among them";
      line(`Your countries: ${g.countries.map((c) => c.name).join(", ")}: ${hit}`);
    }
    if (m) {
      line(`Model: ${fmtKm(m.distance_km)} away, ${fmtInt(m.score)} points; its countries: ` +
           m.countries.map((c) => c.name).join(", "), "model-line");
    } else {
      line("This game has no model (start it with --checkpoint to compare).", "model-line");
    }
    box.hidden = false;
    $("game").dataset.phase = "result";
    const last = res.round >= state.rounds;
    $("next-button").textContent = last ? "See the results" : "Next round";
    $("next-button").hidden = false;
    renderPicks(); updateStatus();
  }
  function totals() {
    let you = 0, model = 0, hasModel = state.results.length > 0;
    for (const r of state.results) {
      you += r.guess.score === null ? 0 : Math.round(r.guess.score);
      if (r.model) model += Math.round(r.model.score); else hasModel = false;
    }
    return { you, model: hasModel ? model : null };
  }
  function updateStatus() {
    const t = totals();
    const s = $("status");
    s.textContent = state.game
      ? `${state.round ? "Round " + state.round + "/" + state.rounds + " · " : ""}Total: ${fmtInt(t.you)}` +
        (t.model !== null ? ` · model: ${fmtInt(t.model)}` : "")
      : "";
    s.dataset.total = String(t.you);
  }
  async function next() {
    showError(null);
    try {
      if (state.round >= state.rounds) await finish(); else await nextRound();
    } catch (err) { showError(err); }
  }
  async function finish() {
    const [game, report] = await Promise.all([
      api("GET", `/api/games/${state.game}`), api("GET", `/api/games/${state.game}/report`)]);
    $("board").hidden = true;
    $("summary").hidden = false;
    const t = totals();
    $("final-line").textContent = `${game.player}: ${fmtInt(t.you)} points in ${game.rounds} rounds` +
      (t.model !== null ? `; the model: ${fmtInt(t.model)}.` : ".");
    $("final-line").dataset.total = String(t.you);
    const body = $("rounds-table").querySelector("tbody");
    body.textContent = "";
    for (const r of game.results) {
      const tr = document.createElement("tr");
      cell(tr, String(r.round));
      cell(tr, r.truth.name);
      cell(tr, r.guess.countries.map((c) => c.code).join(" ") || (r.guess.pin_country ? "(pin) " + r.guess.pin_country : ""));
      cell(tr, fmtInt(r.guess.distance_km), "num");
      cell(tr, r.guess.score === null ? "0" : fmtInt(r.guess.score), "num");
      cell(tr, r.model ? r.model.countries.map((c) => c.code).join(" ") : "");
      cell(tr, r.model ? fmtInt(r.model.distance_km) : "", "num");
      cell(tr, r.model ? fmtInt(r.model.score) : "", "num");
      cell(tr, r.guess.seconds.toFixed(1), "num");
      body.appendChild(tr);
    }
    const rb = $("report-table").querySelector("tbody");
    rb.textContent = "";
    const pct = (v) => v === null ? "" : v.toFixed(1);
    for (const s of report.sections) {
      for (const r of s.rows) {
        const tr = document.createElement("tr");
        tr.dataset.kind = r.kind;
        cell(tr, r.who);
        cell(tr, String(r.rounds), "num");
        cell(tr, pct(r.top1), "num"); cell(tr, pct(r.top3), "num"); cell(tr, pct(r.top5), "num");
        cell(tr, String(r.pins), "num");
        cell(tr, r.median_km === null ? "" : fmtInt(r.median_km), "num");
        cell(tr, r.mean_geoscore === null ? "" : fmtInt(r.mean_geoscore), "num");
        cell(tr, r.median_seconds === null ? "" : r.median_seconds.toFixed(1), "num");
        rb.appendChild(tr);
      }
    }
    state.marks = []; drawMarks();
    $("summary").dataset.done = "1";
  }
  function again() {
    state.game = null; state.round = 0; state.results = [];
    $("summary").hidden = true; $("summary").dataset.done = "";
    $("board").hidden = true; $("start").hidden = false;
    updateStatus();
  }

  // ------------------------------------------------------------------ start
  async function init() {
    try {
      const info = await api("GET", "/api/info");
      state.info = info;
      state.names = Object.fromEntries(info.countries);
      $("max-picks").textContent = String(info.max_picks);
      const list = $("country-list");
      for (const [code, name] of info.countries) {
        const o = document.createElement("option");
        o.value = name + " (" + code + ")";
        list.appendChild(o);
      }
      $("info-line").textContent = `${info.rounds} rounds of ${info.data}` +
        (info.model ? `, against the model ${info.model.checkpoint}` + (info.model.trained_on ? ` (trained on ${info.model.trained_on})` : "") : ", no model") + ".";
      await loadMap();
      $("start-form").addEventListener("submit", start);
      $("add-country").addEventListener("click", addCountry);
      $("country-input").addEventListener("keydown", (e) => { if (e.key === "Enter") { e.preventDefault(); addCountry(); } });
      $("clear-pin").addEventListener("click", () => { if ($("result").hidden) { state.pin = null; renderPin(); } });
      $("guess-button").addEventListener("click", guess);
      $("next-button").addEventListener("click", next);
      $("again-button").addEventListener("click", again);
      document.body.dataset.ready = "1";
    } catch (err) { showError(err); }
  }
  document.addEventListener("DOMContentLoaded", init);
})();
