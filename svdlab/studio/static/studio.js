// svdlab studio: the page of the job server. Plain ES2020, no library, nothing fetched from outside the server.
// Every string from the user or the server reaches the DOM through textContent or attribute setters; the only
// innerHTML is the server's escaped SVG plots fragment. Media URLs come only from the server's JSON.
"use strict";

(() => {
  const $ = (id) => document.getElementById(id);
  const ACTIVE = new Set(["queued", "running"]);
  const MAX_FINISHED_SHOWN = 50;
  const POLL_MS = 2000;
  const DEFAULT_FPS = 8;

  const state = {
    model: null,
    params: [],
    image: null, // the uploaded image: {id, width, height, url}
    seen: new Map(), // job id -> last status seen
    firstSnapshot: true,
    items: new Map(), // job id -> li.job
    paused: false,
    current: null, // the experiment shown in the gallery
    detail: null, // GET /api/experiments/<current>
    cards: new Map(), // job key -> {card, signature}
    picked: new Set(),
    menuLabels: "",
    gallerySeq: 0,
    timers: {},
  };

  // ---- small helpers ----

  function el(tag, attrs = {}, ...children) {
    const node = document.createElement(tag);
    for (const [name, value] of Object.entries(attrs)) {
      if (value === undefined || value === null || value === false) continue;
      if (name === "text") node.textContent = String(value);
      else if (name === "class") node.className = value;
      else node.setAttribute(name, value === true ? "" : String(value));
    }
    for (const child of children) {
      if (child !== null && child !== undefined) node.append(child);
    }
    return node;
  }

  async function api(path, options = {}) {
    const response = await fetch(path, options);
    if (!response.ok) {
      let message = `${response.status} ${response.statusText}`.trim();
      try {
        const body = await response.json();
        if (body && body.error) message = String(body.error);
      } catch (_) {
        // not JSON: keep the status line
      }
      throw new Error(message);
    }
    return response;
  }

  const getJSON = async (path) => (await api(path)).json();
  const post = (path) => api(path, { method: "POST" });
  const postJSON = (path, body) =>
    api(path, { method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(body) });
  const experimentPath = (name) => `/api/experiments/${encodeURIComponent(name)}`;

  // A URL from the server's JSON, accepted only as a path on this server (never another origin or scheme).
  function localUrl(url) {
    const text = String(url || "");
    return text.startsWith("/") && !text.startsWith("//") && !text.includes("\\") ? text : null;
  }

  function debounce(key, ms, fn) {
    clearTimeout(state.timers[key]);
    state.timers[key] = setTimeout(fn, ms);
  }

  function plural(n, word) {
    return `${n} ${word}${n === 1 ? "" : "s"}`;
  }

  function formatMetric(value) {
    if (value === null || value === undefined || value === "") return "—";
    if (typeof value !== "number") return String(value);
    if (Number.isNaN(value)) return "—";
    if (!Number.isFinite(value)) return value > 0 ? "inf" : "-inf";
    return String(Number(value.toPrecision(3)));
  }

  function formatValue(value) {
    if (value === null || value === undefined) return "—";
    return String(value);
  }

  function formatDuration(seconds) {
    if (seconds === null || seconds === undefined || !Number.isFinite(seconds)) return "—";
    const s = Math.max(0, Math.round(seconds));
    if (s < 60) return `${s} s`;
    if (s < 3600) return `${Math.floor(s / 60)} min ${s % 60} s`;
    return `${Math.floor(s / 3600)} h ${Math.floor((s % 3600) / 60)} min`;
  }

  function formatTime(iso) {
    if (!iso) return "—";
    return String(iso).replace("T", " ").replace(/\.\d+/, "").replace(/(\+00:00|Z)$/, " UTC");
  }

  function sweptLabel(values) {
    const entries = Object.entries(values || {});
    if (!entries.length) return "defaults";
    return entries.map(([name, value]) => `${name} ${formatValue(value)}`).join(", ");
  }

  function resultSwept(result) {
    const swept = {};
    for (const name of (state.detail && state.detail.swept) || []) swept[name] = result[name];
    return swept;
  }

  function resultLabel(result) {
    const swept = resultSwept(result);
    const label = sweptLabel(swept);
    return "seed" in swept ? label : `${label}, seed ${formatValue(result.seed)}`;
  }

  function showMessage(target, text, kind = "") {
    const node = $(target);
    node.textContent = text;
    node.className = `message ${kind}`.trim();
  }

  // ---- Create: the image ----

  async function upload(file) {
    if (!file) return;
    const body = new FormData();
    body.append("file", file);
    showMessage("message", `Uploading ${file.name}…`);
    try {
      const image = await (await api("/api/images", { method: "POST", body })).json();
      state.image = image;
      $("image-url").value = "";
      const preview = $("image-preview");
      preview.src = localUrl(image.url) || "";
      preview.hidden = false;
      $("image-size").textContent = `${image.width} × ${image.height} px`;
      showMessage("message", `Image ready (${image.width} × ${image.height}).`, "ok");
    } catch (error) {
      showMessage("message", `Upload failed: ${error.message}`, "error");
    }
  }

  function setupImageInput() {
    const input = $("image-file");
    const zone = $("drop-zone");
    input.addEventListener("change", () => upload(input.files && input.files[0]));
    for (const type of ["dragenter", "dragover"]) {
      zone.addEventListener(type, (event) => {
        event.preventDefault();
        zone.classList.add("over");
      });
    }
    zone.addEventListener("dragleave", () => zone.classList.remove("over"));
    zone.addEventListener("drop", (event) => {
      event.preventDefault();
      zone.classList.remove("over");
      const files = event.dataTransfer && event.dataTransfer.files;
      if (files && files.length) upload(files[0]);
    });
  }

  function currentImage() {
    const url = $("image-url").value.trim();
    if (url) return url;
    return state.image ? state.image.id : null;
  }

  // ---- Create: the knobs ----

  function buildKnobs() {
    const box = $("knobs");
    box.replaceChildren();
    for (const param of state.params) {
      const id = `knob-${param.name}`;
      const hasDefault = param.default !== "" && param.default !== null && param.default !== undefined;
      let input;
      if (param.kind === "choice") {
        input = el("select", { id, name: param.name });
        for (const choice of param.choices || []) {
          input.append(el("option", { value: String(choice), text: String(choice) }));
        }
        if (hasDefault) input.value = String(param.default);
      } else if (param.kind === "int" || param.kind === "float") {
        input = el("input", {
          type: "number",
          id,
          name: param.name,
          min: param.min,
          max: param.max,
          step: param.step || (param.kind === "int" ? 1 : "any"),
          placeholder: hasDefault ? null : "default",
        });
        input.value = hasDefault ? String(param.default) : "";
      } else {
        input = el("input", {
          type: "text",
          id,
          name: param.name,
          placeholder: param.placeholder || (hasDefault ? null : "default"),
        });
        input.value = hasDefault ? String(param.default) : "";
      }
      const vary = el("input", {
        type: "text",
        class: "vary",
        "data-param": param.name,
        placeholder: "vary: a, b, c",
        "aria-label": `values of ${param.name} to vary over`,
      });
      const knob = el(
        "div",
        { class: "knob", "data-param": param.name },
        el("label", { class: "name", for: id, text: param.name }),
        el("div", { class: "row" }, input, vary),
        el("p", { class: "help", title: param.help || null, text: param.help || "" }),
      );
      box.append(knob);
    }
  }

  function isNumeric(param) {
    return param.kind === "int" || param.kind === "float";
  }

  function parseOne(param, text) {
    if (isNumeric(param)) {
      const value = Number(text);
      if (text === "" || !Number.isFinite(value)) throw new Error(`${param.name}: "${text}" is not a number`);
      if (param.kind === "int" && !Number.isInteger(value)) {
        throw new Error(`${param.name}: "${text}" is not a whole number`);
      }
      return value;
    }
    if (param.kind === "choice") {
      const match = (param.choices || []).find((choice) => String(choice) === text);
      if (match === undefined) {
        throw new Error(`${param.name}: "${text}" is not one of ${(param.choices || []).join(", ")}`);
      }
      return match;
    }
    return text;
  }

  function knobInput(param) {
    return $("knobs-form").elements.namedItem(param.name);
  }

  function varyInput(param) {
    return document.querySelector(`input.vary[data-param="${CSS.escape(param.name)}"]`);
  }

  function varyValues(param) {
    const parts = varyInput(param)
      .value.split(",")
      .map((part) => part.trim())
      .filter((part) => part !== "");
    const values = [];
    for (const part of parts) {
      const value = parseOne(param, part);
      if (!values.includes(value)) values.push(value);
    }
    return values;
  }

  function knobValue(param) {
    const text = knobInput(param).value.trim();
    return text === "" ? undefined : parseOne(param, text);
  }

  function differsFromDefault(param, value) {
    const base = param.default;
    if (base === "" || base === null || base === undefined) return true;
    if (isNumeric(param)) return Number(base) !== value;
    return String(base) !== String(value);
  }

  function buildSpec(requireImage) {
    const spec = {};
    const name = $("experiment-name").value.trim();
    if (name) spec.name = name;
    const image = currentImage();
    if (requireImage && !image) throw new Error("Choose or drop an image first, or give an image URL.");
    spec.images = image ? [image] : [];
    const fixed = {};
    const grid = {};
    for (const param of state.params) {
      const values = varyValues(param);
      if (values.length) {
        grid[param.name] = values;
        continue;
      }
      const value = knobValue(param);
      if (value === undefined) continue;
      if (param.name === "seed" || differsFromDefault(param, value)) fixed[param.name] = value;
    }
    spec.fixed = fixed;
    spec.grid = grid;
    spec.outputs = { format: $("format").value };
    return spec;
  }

  function updateKnobs() {
    let count = 1;
    let problem = null;
    for (const param of state.params) {
      const knob = document.querySelector(`.knob[data-param="${CSS.escape(param.name)}"]`);
      let values = [];
      try {
        values = varyValues(param);
      } catch (error) {
        problem = problem || error.message;
      }
      let changed = false;
      try {
        const value = knobValue(param);
        changed = value !== undefined && differsFromDefault(param, value);
      } catch (error) {
        problem = problem || error.message;
      }
      knob.classList.toggle("varied", values.length > 0);
      knob.classList.toggle("changed", changed && !values.length);
      count *= Math.max(1, values.length);
    }
    $("grid-size").textContent = problem ? "?" : plural(count, "video");
    $("submit").textContent = problem ? "Queue" : `Queue ${plural(count, "video")}`;
    if (problem) showMessage("message", problem, "error");
    else if ($("message").classList.contains("error") && $("message").dataset.from === "knobs") {
      showMessage("message", "");
    }
    $("message").dataset.from = problem ? "knobs" : "";
  }

  async function specToml(spec) {
    return (await postJSON("/api/spec.toml", spec)).text();
  }

  async function submitSpec(event) {
    event.preventDefault();
    let spec;
    try {
      spec = buildSpec(true);
    } catch (error) {
      showMessage("message", error.message, "error");
      return;
    }
    const button = $("submit");
    button.disabled = true;
    showMessage("message", "Submitting…");
    try {
      const toml = await specToml(spec);
      const response = await api("/api/sweeps", {
        method: "POST",
        headers: { "Content-Type": "application/toml" },
        body: toml,
      });
      const result = await response.json();
      const jobs = result.jobs || [];
      const warnings = (result.warnings || []).join(" ");
      const queued = `Queued ${plural(jobs.length, "video")} in ${result.experiment}.`;
      showMessage("message", warnings ? `${queued} Note: ${warnings}` : queued, warnings ? "warn" : "ok");
      await refreshExperiments(result.experiment);
    } catch (error) {
      showMessage("message", error.message, "error");
    } finally {
      button.disabled = false;
    }
  }

  async function downloadSpec() {
    let spec;
    try {
      spec = buildSpec(false);
    } catch (error) {
      showMessage("message", error.message, "error");
      return;
    }
    try {
      const text = await specToml(spec);
      const url = URL.createObjectURL(new Blob([text], { type: "application/toml" }));
      const link = el("a", { href: url, download: `${spec.name || "studio-sweep"}.toml`, hidden: true });
      document.body.append(link);
      link.click();
      link.remove();
      setTimeout(() => URL.revokeObjectURL(url), 10_000);
      showMessage("message", "Spec downloaded.", "ok");
    } catch (error) {
      showMessage("message", error.message, "error");
    }
  }

  // ---- Queue ----

  function jobOrder(a, b) {
    const rank = (job) => (job.status === "running" ? 0 : job.status === "queued" ? 1 : 2);
    if (rank(a) !== rank(b)) return rank(a) - rank(b);
    return rank(a) < 2 ? a.id - b.id : b.id - a.id;
  }

  function buildJobItem(job) {
    const li = el("li", { class: "job", "data-id": job.id });
    const title = el("div", { class: "title" }, el("span", { class: "status" }), el("span", { class: "name" }));
    const cancel = el("button", { type: "button", class: "cancel", text: "cancel" });
    cancel.addEventListener("click", () => cancelJob(li.dataset.id, cancel));
    const progress = el("progress", { max: 1, value: 0 });
    const row = el("div", { class: "progress-row" }, progress, el("span", { class: "eta" }));
    li.append(title, cancel, el("div", { class: "swept" }), row, el("div", { class: "error", hidden: true }));
    return li;
  }

  function updateJobItem(li, job) {
    li.dataset.status = job.status;
    const status = li.querySelector(".status");
    status.textContent = job.status;
    status.className = `status ${job.status}`;
    li.querySelector(".name").textContent = `#${job.id} ${job.experiment}`;
    li.querySelector(".name").title = job.experiment;
    li.querySelector(".swept").textContent = sweptLabel(job.swept);
    li.querySelector("button.cancel").hidden = !ACTIVE.has(job.status);
    const progress = li.querySelector("progress");
    const steps = Math.max(1, Number(job.steps) || 1);
    progress.max = steps;
    progress.value = job.status === "done" ? steps : Math.min(steps, Number(job.step) || 0);
    let text;
    if (job.status === "running") {
      text = `step ${job.step || 0}/${job.steps || "?"}`;
      if (job.eta_s != null) text += ` · ETA ${formatDuration(job.eta_s)}`;
    } else if (job.status === "queued") {
      text = job.eta_s != null ? `queued · ETA ${formatDuration(job.eta_s)}` : "queued";
    } else if (job.status === "done" && job.started && job.finished) {
      text = `done in ${formatDuration((Date.parse(job.finished) - Date.parse(job.started)) / 1000)}`;
    } else {
      text = job.status;
    }
    li.querySelector(".eta").textContent = text;
    const error = li.querySelector(".error");
    error.hidden = !job.error;
    error.textContent = job.error || "";
  }

  function renderQueue(jobs) {
    const list = $("queue");
    const active = jobs.filter((job) => ACTIVE.has(job.status));
    const finished = jobs.filter((job) => !ACTIVE.has(job.status)).sort(jobOrder).slice(0, MAX_FINISHED_SHOWN);
    const shown = [...active.sort(jobOrder), ...finished];
    const keep = new Set();
    shown.forEach((job, index) => {
      let li = state.items.get(job.id);
      if (!li) {
        li = buildJobItem(job);
        state.items.set(job.id, li);
      }
      updateJobItem(li, job);
      if (list.children[index] !== li) list.insertBefore(li, list.children[index] || null);
      keep.add(job.id);
    });
    for (const [id, li] of state.items) {
      if (!keep.has(id)) {
        li.remove();
        state.items.delete(id);
      }
    }
  }

  function renderTotal(jobs, eta) {
    const running = jobs.filter((job) => job.status === "running").length;
    const queued = jobs.filter((job) => job.status === "queued").length;
    let total = eta;
    if (total === null || total === undefined) {
      const known = jobs.filter((job) => ACTIVE.has(job.status) && job.eta_s != null);
      total = known.length ? Math.max(...known.map((job) => job.eta_s)) : null;
    }
    let text;
    if (!jobs.length) text = "No jobs yet.";
    else if (!running && !queued) text = state.paused ? "Nothing queued; paused." : "Nothing queued or running.";
    else {
      text = `${running} running, ${queued} queued`;
      if (state.paused) text += " · paused";
      else if (total !== null) text += ` · about ${formatDuration(total)} left`;
    }
    $("total-eta").textContent = text;
  }

  function renderPaused() {
    const badge = $("queue-state");
    badge.textContent = state.paused ? "paused" : "running";
    badge.classList.toggle("paused", state.paused);
    $("pause").textContent = state.paused ? "Resume queue" : "Pause queue";
  }

  function applySnapshot(data) {
    const jobs = Array.isArray(data.jobs) ? data.jobs : [];
    state.paused = Boolean(data.paused);
    renderPaused();
    let changed = false;
    let currentChanged = false;
    for (const job of jobs) {
      const before = state.seen.get(job.id);
      if (before !== job.status) {
        changed = true;
        if (!state.firstSnapshot && job.experiment === state.current) currentChanged = true;
      }
      state.seen.set(job.id, job.status);
    }
    const first = state.firstSnapshot;
    state.firstSnapshot = false;
    renderQueue(jobs);
    renderTotal(jobs, data.eta_s);
    if (changed && !first) debounce("experiments", 400, () => refreshExperiments());
    if (currentChanged) debounce("gallery", 250, () => loadGallery());
  }

  async function cancelJob(id, button) {
    button.disabled = true;
    try {
      await post(`/api/jobs/${encodeURIComponent(id)}/cancel`);
    } catch (error) {
      $("total-eta").textContent = `Cancel failed: ${error.message}`;
    } finally {
      button.disabled = false;
    }
  }

  async function togglePause() {
    const button = $("pause");
    button.disabled = true;
    try {
      const result = await (await post(`/api/queue/${state.paused ? "resume" : "pause"}`)).json();
      state.paused = Boolean(result.paused);
      renderPaused();
    } catch (error) {
      $("total-eta").textContent = error.message;
    } finally {
      button.disabled = false;
    }
  }

  async function poll() {
    try {
      const data = await getJSON("/api/jobs");
      applySnapshot({ jobs: data.jobs || [], paused: data.paused, eta_s: null });
    } catch (error) {
      $("total-eta").textContent = `Server unreachable (${error.message}); retrying…`;
    }
    setTimeout(poll, POLL_MS);
  }

  function connectEvents() {
    if (!window.EventSource) {
      poll();
      return;
    }
    const source = new EventSource("/api/events");
    source.addEventListener("queue", (event) => {
      try {
        applySnapshot(JSON.parse(event.data));
      } catch (error) {
        $("total-eta").textContent = `Bad queue message: ${error.message}`;
      }
    });
    source.addEventListener("error", () => {
      source.close();
      poll();
    });
  }

  // ---- Gallery ----

  async function refreshExperiments(select) {
    let data;
    try {
      data = await getJSON("/api/experiments");
    } catch (error) {
      showMessage("gallery-message", error.message, "error");
      return;
    }
    const list = [...(data.experiments || [])].sort((a, b) =>
      String(b.updated || "").localeCompare(String(a.updated || "")),
    );
    const names = list.map((experiment) => experiment.name);
    let target = state.current;
    if (select && names.includes(select)) target = select;
    if (!target || !names.includes(target)) target = names[0] || null;

    const menu = $("experiment-select");
    const labels = list.map((experiment) => [experiment.name, `${experiment.name} (${experiment.done} done)`]);
    if (JSON.stringify(labels) !== state.menuLabels) {  // rebuilt only on change: an open menu stays open
      state.menuLabels = JSON.stringify(labels);
      menu.replaceChildren(...labels.map(([value, text]) => el("option", { value, text })));
    }
    if (target) menu.value = target;
    renderHistory(list, target);
    if (target !== state.current) {
      selectExperiment(target);
    } else if (target) {
      loadGallery();
    } else {
      renderEmptyGallery();
    }
  }

  function selectExperiment(name) {
    if (name !== state.current) {
      state.current = name;
      state.detail = null;
      state.picked.clear();
      state.cards.clear();
      $("cards").replaceChildren();
    }
    if ($("experiment-select").value !== name && name) $("experiment-select").value = name;
    for (const row of $("history").tBodies[0].rows) row.classList.toggle("selected", row.dataset.name === name);
    updateLinks();
    if (name) loadGallery();
    else renderEmptyGallery();
  }

  function renderEmptyGallery() {
    $("cards").replaceChildren();
    $("gallery-info").textContent = "No experiments yet: queue some videos above.";
    updateLinks();
    updatePicks();
  }

  function updateLinks() {
    const name = state.current;
    const spec = $("experiment-spec");
    const report = $("open-report");
    spec.hidden = report.hidden = !name;
    if (name) {
      spec.href = `${experimentPath(name)}/spec.toml`;
      spec.setAttribute("download", `${name}.toml`);
    }
  }

  async function loadGallery() {
    const name = state.current;
    if (!name) return;
    const seq = ++state.gallerySeq;
    let detail;
    try {
      detail = await getJSON(experimentPath(name));
    } catch (error) {
      if (seq === state.gallerySeq) showMessage("gallery-message", error.message, "error");
      return;
    }
    if (seq !== state.gallerySeq || name !== state.current) return;
    showMessage("gallery-message", "");
    state.detail = detail;
    renderCards(detail);
  }

  function cardSignature(result) {
    return JSON.stringify([result.status, result.video_url, result.error]);
  }

  function metricsTable(result, metrics) {
    const rows = metrics
      .filter((metric) => result[metric] !== undefined)
      .map((metric) =>
        el(
          "tr",
          {},
          el("td", { text: metric }),
          el("td", { class: "value", text: formatMetric(result[metric]) }),
        ),
      );
    return rows.length ? el("table", { class: "metrics" }, el("tbody", {}, ...rows)) : null;
  }

  function buildCard(result, detail) {
    const label = resultLabel(result);
    const card = el("div", { class: `card ${result.status}`, "data-key": result.key });
    if (result.status === "done" && localUrl(result.video_url)) {
      const video = document.createElement("video");
      video.className = "result";
      video.muted = true;
      video.defaultMuted = true;
      video.loop = true;
      video.autoplay = true;
      video.playsInline = true;
      for (const name of ["muted", "loop", "autoplay", "playsinline"]) video.setAttribute(name, "");
      video.preload = "auto";
      video.title = label;
      video.src = localUrl(result.video_url);
      card.append(video);
    } else {
      card.append(el("div", { class: "placeholder", text: result.status }));
    }
    card.append(el("div", { class: "caption", text: label }));
    if (result.status === "done" && localUrl(result.video_url)) {
      const pick = el("input", { type: "checkbox", class: "pick", "data-key": result.key });
      pick.checked = state.picked.has(result.key);
      pick.addEventListener("change", () => {
        if (pick.checked) state.picked.add(result.key);
        else state.picked.delete(result.key);
        updatePicks();
      });
      card.append(el("label", { class: "pick-label" }, pick, "pick"));
    }
    if (result.error) card.append(el("div", { class: "error", text: result.error }));
    const table = metricsTable(result, detail.metrics || []);
    if (table) card.append(table);
    return card;
  }

  function renderCards(detail) {
    const box = $("cards");
    const results = detail.results || [];
    const keep = new Set();
    results.forEach((result, index) => {
      const signature = cardSignature(result);
      let entry = state.cards.get(result.key);
      if (!entry || entry.signature !== signature) {
        const card = buildCard(result, detail);
        if (entry) entry.card.replaceWith(card);
        entry = { card, signature };
        state.cards.set(result.key, entry);
      }
      if (box.children[index] !== entry.card) box.insertBefore(entry.card, box.children[index] || null);
      keep.add(result.key);
    });
    for (const [key, entry] of state.cards) {
      if (!keep.has(key)) {
        entry.card.remove();
        state.cards.delete(key);
      }
    }
    for (const key of [...state.picked]) {
      const result = results.find((r) => r.key === key);
      if (!result || result.status !== "done") state.picked.delete(key);
    }
    const counts = {};
    for (const result of results) counts[result.status] = (counts[result.status] || 0) + 1;
    const summary = Object.entries(counts).map(([status, n]) => `${n} ${status}`).join(", ");
    $("gallery-info").textContent = `model ${detail.model || "?"} · ${summary || "no jobs"}`;
    updatePicks();
  }

  function pickable() {
    const results = (state.detail && state.detail.results) || [];
    return results.filter((result) => result.status === "done" && localUrl(result.video_url));
  }

  function updatePicks() {
    for (const { card } of state.cards.values()) {
      const pick = card.querySelector("input.pick");
      if (pick) {
        pick.checked = state.picked.has(pick.dataset.key);
        card.classList.toggle("picked", pick.checked);
      }
    }
    const all = pickable();
    const compare = $("compare-button");
    compare.disabled = state.picked.size < 2;
    compare.textContent = state.picked.size ? `Compare ${state.picked.size} picked` : "Compare picked";
    const everything = all.length > 0 && all.every((r) => state.picked.has(r.key));
    $("pick-all").textContent = everything ? "Unpick all" : "Pick all";
    $("pick-all").disabled = all.length === 0;
  }

  function pickAll() {
    const all = pickable();
    const everything = all.length > 0 && all.every((r) => state.picked.has(r.key));
    if (everything) state.picked.clear();
    else for (const result of all) state.picked.add(result.key);
    updatePicks();
  }

  async function openReport(event) {
    event.preventDefault();
    const name = state.current;
    if (!name) return;
    const tab = window.open("about:blank", "_blank");
    showMessage("gallery-message", "Writing the report…");
    try {
      const url = localUrl((await (await post(`${experimentPath(name)}/report`)).json()).url);
      if (!url) throw new Error("the server gave no report URL");
      if (tab) {
        tab.opener = null;
        tab.location.href = url;
      } else {
        window.location.assign(url);
      }
      showMessage("gallery-message", "");
    } catch (error) {
      if (tab) tab.close();
      showMessage("gallery-message", `Report: ${error.message}`, "error");
    }
  }

  // ---- History ----

  function renderHistory(list, selected) {
    const body = $("history").tBodies[0];
    const rows = list.map((experiment) => {
      const button = el("button", { type: "button", class: "link", text: experiment.name });
      button.addEventListener("click", () => {
        selectExperiment(experiment.name);
        $("gallery").scrollIntoView({ behavior: "smooth", block: "start" });
      });
      const count = (n) => el("td", { class: "count", text: formatValue(n ?? 0) });
      const row = el(
        "tr",
        { "data-name": experiment.name, class: experiment.name === selected ? "selected" : null },
        el("td", {}, button),
        el("td", { text: formatValue(experiment.model) }),
        count(experiment.done),
        count(experiment.failed),
        count(experiment.queued),
        count(experiment.running),
        el("td", { text: formatValue(experiment.source) }),
        el("td", { text: formatTime(experiment.updated) }),
      );
      return row;
    });
    if (!rows.length) {
      rows.push(el("tr", {}, el("td", { colspan: 8, class: "muted", text: "No experiments yet." })));
    }
    body.replaceChildren(...rows);
  }

  // ---- Compare: synced playback, metrics side by side, plots ----

  const compare = { videos: [], last: new Map(), frame: 0 };

  function paramFor(result, detail, name) {
    if (result[name] !== undefined && result[name] !== null && result[name] !== "") return Number(result[name]);
    const fixed = detail.spec && detail.spec.fixed;
    if (fixed && fixed[name] !== undefined) return Number(fixed[name]);
    if (state.model && detail.model === state.model.model) {
      const param = state.params.find((p) => p.name === name);
      if (param && param.default !== "" && param.default !== null) return Number(param.default);
    }
    return null;
  }

  const fpsOf = (video) => Number(video.dataset.fps) || DEFAULT_FPS;
  const framesOf = (video) =>
    Number(video.dataset.frames) || Math.max(1, Math.round((video.duration || 0) * fpsOf(video)));
  const frameIndex = (video) => Math.min(framesOf(video) - 1, Math.floor(video.currentTime * fpsOf(video) + 1e-3));

  function syncGroups() {
    const byDuration = new Map();
    for (const video of compare.videos) {
      if (!(video.duration > 0)) continue;
      const key = video.duration.toFixed(2);
      if (!byDuration.has(key)) byDuration.set(key, []);
      byDuration.get(key).push(video);
    }
    return [...byDuration.values()];
  }

  function tick() {
    if (!compare.videos.length) return;
    for (const group of syncGroups()) {
      const leader = group[0];
      const t = leader.currentTime;
      const looped = t + 0.05 < (compare.last.has(leader) ? compare.last.get(leader) : t);
      compare.last.set(leader, t);
      for (const video of group.slice(1)) {
        if (!video.seeking && (looped || Math.abs(video.currentTime - t) > 0.1)) video.currentTime = t;
        if (leader.paused !== video.paused) {
          if (leader.paused) video.pause();
          else video.play().catch(() => {});
        }
      }
    }
    const lead = compare.videos[0];
    const readout = lead.readyState >= 1 ? `frame ${frameIndex(lead) + 1} / ${framesOf(lead)}` : "";
    $("frame-readout").textContent = readout;
    $("play-all").textContent = compare.videos.some((v) => !v.paused) ? "Pause all" : "Play all";
    compare.frame = requestAnimationFrame(tick);
  }

  function stopCompare() {
    cancelAnimationFrame(compare.frame);
    for (const video of compare.videos) {
      video.pause();
      video.removeAttribute("src");
      video.load();
    }
    compare.videos = [];
    compare.last.clear();
  }

  function playAll() {
    if (compare.videos.some((v) => !v.paused)) for (const v of compare.videos) v.pause();
    else for (const v of compare.videos) v.play().catch(() => {});
  }

  function step(by) {
    if (!compare.videos.length) return;
    for (const v of compare.videos) v.pause();
    const index = frameIndex(compare.videos[0]) + by;
    for (const v of compare.videos) {
      const n = framesOf(v);
      v.currentTime = ((((index % n) + n) % n) + 0.5) / fpsOf(v);
    }
  }

  function bestDirection(note) {
    const text = String(note || "").toLowerCase();
    if (text.includes("higher is better")) return "max";
    if (text.includes("lower is better")) return "min";
    return null;
  }

  function compareTable(results, detail) {
    const notes = detail.metric_notes || {};
    const head = el(
      "tr",
      {},
      el("th", { class: "metric", text: "metric" }),
      ...results.map((r) => el("th", { text: resultLabel(r) })),
    );
    const rows = (detail.metrics || []).map((metric) => {
      const values = results.map((r) => r[metric]);
      const numbers = values.filter((v) => typeof v === "number" && Number.isFinite(v));
      const direction = bestDirection(notes[metric]);
      // The best value is marked only where it differs from the others as shown (3 significant figures).
      let best = null;
      if (direction && numbers.length > 1) {
        best = formatMetric(direction === "max" ? Math.max(...numbers) : Math.min(...numbers));
        if (new Set(numbers.map(formatMetric)).size === 1) best = null;
      }
      const th = el("th", { class: "metric", title: notes[metric] || null, text: metric });
      if (notes[metric]) th.append(el("small", { text: notes[metric] }));
      return el(
        "tr",
        {},
        th,
        ...values.map((v) => {
          const text = formatMetric(v);
          return el("td", { class: best !== null && text === best ? "best" : null, text });
        }),
      );
    });
    $("compare-table").replaceChildren(el("thead", {}, head), el("tbody", {}, ...rows));
  }

  async function loadPlots(name) {
    const plots = $("plots");
    plots.replaceChildren(el("p", { class: "muted", text: "loading plots…" }));
    try {
      const fragment = await (await api(`${experimentPath(name)}/plots`)).text();
      // The one innerHTML of the page: server-generated SVG whose text the server escapes.
      plots.innerHTML = fragment;
      if (!fragment.trim()) {
        plots.replaceChildren(
          el("p", { class: "muted", text: "No plots: they need a numeric swept knob with two or more values." }),
        );
      }
    } catch (error) {
      plots.replaceChildren(el("p", { class: "message error", text: `Plots: ${error.message}` }));
    }
  }

  function openCompare() {
    const detail = state.detail;
    if (!detail) return;
    const results = pickable().filter((r) => state.picked.has(r.key));
    if (results.length < 2) return;
    stopCompare();
    const box = $("compare-videos");
    box.replaceChildren();
    for (const result of results) {
      const label = resultLabel(result);
      const video = document.createElement("video");
      video.className = "compare";
      video.muted = true;
      video.defaultMuted = true;
      video.loop = true;
      video.playsInline = true;
      for (const name of ["muted", "loop", "playsinline"]) video.setAttribute(name, "");
      video.preload = "auto";
      const fps = paramFor(result, detail, "fps");
      const frames = paramFor(result, detail, "num_frames");
      if (fps) video.dataset.fps = String(fps);
      if (frames) video.dataset.frames = String(frames);
      video.dataset.key = result.key;
      video.title = label;
      video.src = localUrl(result.video_url);
      compare.videos.push(video);
      box.append(el("figure", {}, video, el("figcaption", { text: label })));
    }
    compareTable(results, detail);
    $("compare").hidden = false;
    $("play-all").textContent = "Play all";
    compare.frame = requestAnimationFrame(tick);
    loadPlots(detail.name || state.current);
    $("compare").scrollIntoView({ behavior: "smooth", block: "start" });
  }

  function closeCompare() {
    stopCompare();
    $("compare").hidden = true;
  }

  // ---- start ----

  async function loadModel() {
    try {
      state.model = await getJSON("/api/model");
    } catch (error) {
      $("model-info").textContent = `cannot reach the server: ${error.message}`;
      return;
    }
    state.params = state.model.parameters || [];
    $("model-info").textContent = `model ${state.model.model} on ${state.model.device}`;
    const format = $("format");
    format.replaceChildren(...(state.model.formats || []).map((f) => el("option", { value: f, text: f })));
    if ((state.model.formats || []).includes("mp4")) format.value = "mp4";
    buildKnobs();
    updateKnobs();
  }

  function wire() {
    setupImageInput();
    const form = $("knobs-form");
    form.noValidate = true;
    form.addEventListener("input", updateKnobs);
    form.addEventListener("change", updateKnobs);
    form.addEventListener("submit", submitSpec);
    $("download-spec").addEventListener("click", downloadSpec);
    $("pause").addEventListener("click", togglePause);
    $("experiment-select").addEventListener("change", (event) => selectExperiment(event.target.value));
    $("pick-all").addEventListener("click", pickAll);
    $("compare-button").addEventListener("click", openCompare);
    $("open-report").addEventListener("click", openReport);
    $("play-all").addEventListener("click", playAll);
    $("step-back").addEventListener("click", () => step(-1));
    $("step-forward").addEventListener("click", () => step(1));
    $("close-compare").addEventListener("click", closeCompare);
  }

  wire();
  loadModel().then(() => {
    connectEvents();
    refreshExperiments();
  });
})();
