// zoomq console: the page's behaviour. No framework, no build step.
// Every value from the ensemble (paths, data, ACL ids, errors) reaches the page through
// textContent or DOM properties, never as HTML.
"use strict";

(() => {
  const state = {
    csrf: null,
    page: null,
    path: "/",
    node: null,
    watch: null,
    ensembleTimer: null,
    history: new Map(), // host -> [{t, rate, latency}]
    pendingDelete: null,
  };
  const HISTORY_POINTS = 90;
  const POLL_MS = 1500;
  const COLORS = ["#2563eb", "#dc2626", "#16a34a", "#d97706", "#7c3aed", "#0891b2", "#db2777"];

  const $ = (id) => document.getElementById(id);

  function el(tag, props, ...children) {
    const node = document.createElement(tag);
    for (const [key, value] of Object.entries(props || {})) {
      if (value === undefined || value === null) continue;
      if (key === "class") node.className = value;
      else if (key === "text") node.textContent = String(value);
      else if (key.startsWith("data-")) node.setAttribute(key, String(value));
      else node[key] = value;
    }
    for (const child of children) {
      if (child === null || child === undefined) continue;
      node.append(child instanceof Node ? child : document.createTextNode(String(child)));
    }
    return node;
  }

  function show(node, visible) { node.hidden = !visible; }

  function flash(message, isError) {
    const box = $("flash");
    box.textContent = message;
    box.className = isError ? "error" : "";
    box.hidden = false;
    clearTimeout(flash.timer);
    flash.timer = setTimeout(() => { box.hidden = true; }, isError ? 8000 : 4000);
  }

  function say(id, message, kind) {
    const node = $(id);
    node.textContent = message || "";
    node.className = kind || "";
  }

  function errorText(err) {
    return (err.name && err.name !== "Error" ? err.name + ": " : "") + (err.message || "");
  }

  // --- talking to the console's API -----------------------------------------------------------

  async function api(url, options) {
    const method = (options && options.method) || "GET";
    const init = { method, headers: { Accept: "application/json" }, credentials: "same-origin", cache: "no-store" };
    if (method !== "GET") {
      init.headers["Content-Type"] = "application/json";
      init.headers["X-CSRF-Token"] = state.csrf || "";
      init.body = JSON.stringify((options && options.body) || {});
    }
    const res = await fetch(url, init);
    let data = null;
    try { data = await res.json(); } catch (_) { data = null; }
    if (!res.ok) {
      const err = new Error((data && data.message) || res.statusText || "request failed");
      err.name = (data && data.error) || "HTTP " + res.status;
      err.status = res.status;
      err.body = data || {};
      if (err.name === "NoSession") {
        flash("The console session ended: reloading it.", true);
        await loadSession();
      }
      throw err;
    }
    return data;
  }

  const q = (path) => "?path=" + encodeURIComponent(path);

  async function loadSession() {
    const s = await api("/api/session");
    state.csrf = s.csrf;
    $("hosts").textContent = s.hosts;
    renderIdentities(s.identities, s.commandLineIdentities);
  }

  function renderIdentities(identities, fromCommandLine) {
    const parts = [];
    if (fromCommandLine && fromCommandLine.length) parts.push("console: " + fromCommandLine.join(", "));
    if (identities && identities.length) parts.push("you: " + identities.join(", "));
    $("identities").textContent = parts.length ? parts.join(" · ") : "no credentials (world)";
    state.identities = identities || [];
    show($("logout-button"), state.identities.length > 0);
  }

  // --- navigation --------------------------------------------------------------------------------

  function go(url, replace) {
    if (replace) history.replaceState(null, "", url); else history.pushState(null, "", url);
    route();
  }

  function route() {
    const url = new URL(location.href);
    const page = url.pathname === "/ensemble" ? "ensemble" : "tree";
    state.page = page;
    for (const a of document.querySelectorAll("#main-nav a")) a.classList.toggle("active", a.dataset.page === page);
    show($("tree-page"), page === "tree");
    show($("ensemble-page"), page === "ensemble");
    stopWatch();
    if (page === "ensemble") {
      startEnsemble();
    } else {
      stopEnsemble();
      openNode(url.searchParams.get("path") || "/");
    }
  }

  function treeUrl(path) { return "/tree" + q(path); }

  function parentOf(path) {
    if (path === "/") return "/";
    const at = path.lastIndexOf("/");
    return at <= 0 ? "/" : path.slice(0, at);
  }

  // --- the tree page -----------------------------------------------------------------------------

  async function openNode(path) {
    state.path = path;
    state.node = null;
    state.pendingDelete = null;
    show($("delete-confirm"), false);
    for (const id of ["edit-result", "create-result", "delete-result"]) say(id, "");
    $("watch-log").replaceChildren();
    renderBreadcrumb(path);
    await Promise.all([loadChildren(path), loadNode(path)]);
  }

  function renderBreadcrumb(path) {
    const crumbs = [el("a", { href: treeUrl("/"), text: "/", "data-path": "/" })];
    let acc = "";
    for (const part of path.split("/").filter(Boolean)) {
      acc += "/" + part;
      if (crumbs.length > 1) crumbs.push("/");
      crumbs.push(el("a", { href: treeUrl(acc), text: part, "data-path": acc }));
    }
    $("breadcrumb").replaceChildren(...crumbs);
  }

  async function loadChildren(path) {
    const list = $("children");
    try {
      const res = await api("/api/children" + q(path));
      if (path !== state.path) return;
      const items = res.children.map((c) => el("li", { "data-name": c.name },
        el("a", { href: treeUrl(c.path), text: c.name, "data-path": c.path }),
        el("span", { class: c.noauth ? "count noauth-badge" : "count", text: c.noauth ? "NoAuth"
          : (c.ephemeral ? "ephemeral · " : "") + c.numChildren + (c.numChildren === 1 ? " child" : " children") })));
      list.replaceChildren(...items);
      let note = res.total === 0 ? "no children" : res.total + (res.total === 1 ? " child" : " children");
      if (res.truncated) note += " (first " + res.children.length + " shown)";
      $("children-note").textContent = note;
    } catch (err) {
      if (path !== state.path) return;
      list.replaceChildren();
      $("children-note").textContent = err.name === "NoAuthError" ? "NoAuth: this session may not list the children" : errorText(err);
    }
  }

  async function loadNode(path) {
    show($("node-error"), false);
    $("node-path").textContent = path;
    try {
      const node = await api("/api/node" + q(path));
      if (path !== state.path) return;
      state.node = node;
      renderNode(node, true);
    } catch (err) {
      if (path !== state.path) return;
      state.node = null;
      renderNode(null, true);
      const box = $("node-error");
      box.textContent = errorText(err);
      show(box, true);
    }
  }

  function renderNode(node, resetEdit) {
    const readable = node && node.data;
    show($("node-noauth"), Boolean(node && node.noauth));
    if (node && node.noauth) {
      $("node-noauth-text").textContent = " — this session may not read " + node.path + " (" + node.dataError.error +
        "). Log in with credentials its ACL admits.";
    }
    show($("data-section"), Boolean(readable));
    show($("edit-section"), Boolean(readable));
    show($("watch-section"), Boolean(node));
    show($("create-section"), Boolean(node));
    show($("delete-section"), Boolean(node) && node.path !== "/" && node.path !== "/zookeeper" && !node.path.startsWith("/zookeeper/"));
    if (readable) renderData(node.data);
    renderStat(node ? node.stat : null);
    if (node && !node.stat) {
      $("stat-table").tBodies[0].replaceChildren(el("tr", { "data-field": "none" },
        el("td", { text: "not readable by this session" }), el("td", { text: node.noauth ? "NoAuth" : "–" })));
    }
    renderAcls(node);
    if (readable && resetEdit) {
      $("edit-data").value = node.data.value;
      $("edit-encoding").value = node.data.encoding;
      $("edit-data").dataset.dirty = "";
    }
    $("edit-version").textContent = node && node.stat ? "(loaded version " + node.stat.version + ")" : "";
  }

  function renderData(data) {
    $("node-data").textContent = data.value;
    $("data-encoding").textContent = data.encoding;
    $("data-size").textContent = data.size + (data.size === 1 ? " byte" : " bytes");
  }

  const STAT_ROWS = [
    ["version", "version"], ["cversion", "cversion"], ["aversion", "aversion"],
    ["czxid", "czxidHex"], ["mzxid", "mzxidHex"], ["pzxid", "pzxidHex"],
    ["ctime", "ctimeIso"], ["mtime", "mtimeIso"], ["dataLength", "dataLength"],
    ["numChildren", "numChildren"], ["ephemeralOwner", "ephemeralOwnerHex"],
  ];

  function renderStat(stat) {
    const rows = stat ? STAT_ROWS.map(([label, key]) => el("tr", { "data-field": label },
      el("td", { text: label }), el("td", { text: stat[key] }))) : [];
    $("stat-table").tBodies[0].replaceChildren(...rows);
  }

  function renderAcls(node) {
    const body = $("acl-table").tBodies[0];
    const acls = node && node.acls ? node.acls : [];
    body.replaceChildren(...acls.map((a) => el("tr", {},
      el("td", { text: a.scheme }), el("td", { text: a.id }), el("td", { text: a.perms, title: a.permsList.join(", ") }))));
    const err = $("acl-error");
    if (node && node.aclError) {
      err.textContent = node.aclError.error + ": this session may not read the ACL";
      show(err, true);
    } else {
      show(err, false);
    }
  }

  async function saveEdit(event) {
    event.preventDefault();
    const node = state.node;
    if (!node || !node.stat) return;
    say("edit-result", "saving…");
    try {
      const res = await api("/api/node/set", { method: "POST", body: {
        path: node.path, data: $("edit-data").value, encoding: $("edit-encoding").value, version: node.stat.version,
      } });
      say("edit-result", "Saved: " + res.path + " is now at version " + res.stat.version, "ok");
      await loadNode(node.path);
    } catch (err) {
      say("edit-result", errorText(err), "error");
    }
  }

  async function createChild(event) {
    event.preventDefault();
    const kind = $("create-kind").value;
    const body = {
      parent: state.path, name: $("create-name").value, kind,
      data: $("create-data").value, encoding: $("create-encoding").value, acl: $("create-acl").value,
    };
    if (kind === "ttl") {
      body.ttl_ms = Number($("create-ttl").value);
      body.sequential = $("create-ttl-seq").checked;
    }
    try {
      const res = await api("/api/node/create", { method: "POST", body });
      say("create-result", "Created " + res.path, "ok");
      $("create-name").value = "";
      $("create-data").value = "";
      await Promise.all([loadChildren(state.path), loadNode(state.path)]);
    } catch (err) {
      say("create-result", errorText(err), "error");
    }
  }

  function onKindChange() {
    const ttl = $("create-kind").value === "ttl";
    show($("create-ttl-label"), ttl);
    show($("create-ttl-seq-label"), ttl);
  }

  async function askDelete() {
    const node = state.node;
    if (!node || !node.stat) return;
    say("delete-result", "");
    const sample = $("delete-sample");
    sample.replaceChildren();
    if (node.stat.numChildren > 0) {
      try {
        const plan = await api("/api/node/delete-plan", { method: "POST", body: { path: node.path } });
        offerRecursive(plan);
      } catch (err) {
        say("delete-result", errorText(err), "error");
      }
      return;
    }
    state.pendingDelete = { path: node.path, recursive: false, version: node.stat.version };
    $("delete-confirm-text").textContent = "Delete " + node.path + " (version " + node.stat.version + ")? 1 node goes.";
    $("delete-confirm-yes").textContent = "Delete 1 node";
    show($("delete-confirm"), true);
  }

  function offerRecursive(plan, note) {
    state.pendingDelete = { path: plan.path, recursive: true, token: plan.token, count: plan.count };
    $("delete-confirm-text").textContent = (note ? note + " " : "") + "Delete " + plan.path +
      " and everything below it: " + plan.count + " nodes go.";
    const items = (plan.sample || []).map((p) => el("li", { text: p }));
    if (plan.count > items.length && items.length) items.push(el("li", { text: "… and " + (plan.count - items.length) + " more" }));
    $("delete-sample").replaceChildren(...items);
    $("delete-confirm-yes").textContent = "Delete " + plan.count + " nodes";
    show($("delete-confirm"), true);
  }

  async function confirmDelete() {
    const pending = state.pendingDelete;
    if (!pending) return;
    const body = pending.recursive
      ? { path: pending.path, recursive: true, confirm: pending.token }
      : { path: pending.path, version: pending.version };
    try {
      const res = await api("/api/node/delete", { method: "POST", body });
      show($("delete-confirm"), false);
      state.pendingDelete = null;
      flash("Deleted " + res.path + " (" + res.deleted + (res.deleted === 1 ? " node)" : " nodes)"));
      go(treeUrl(parentOf(pending.path)));
    } catch (err) {
      if (err.name === "SubtreeChanged" && err.body.token) {
        offerRecursive({ path: pending.path, count: err.body.count, token: err.body.token, sample: [] }, "It changed meanwhile.");
      } else {
        show($("delete-confirm"), false);
        state.pendingDelete = null;
        say("delete-result", errorText(err), "error");
      }
    }
  }

  function cancelDelete() {
    state.pendingDelete = null;
    show($("delete-confirm"), false);
  }

  // --- live watch (Server-Sent Events) ---------------------------------------------------------

  function logWatch(text) {
    const log = $("watch-log");
    log.prepend(el("li", { text: new Date().toLocaleTimeString() + " " + text }));
    while (log.children.length > 50) log.lastChild.remove();
  }

  function startWatch() {
    stopWatch();
    const path = state.path;
    const source = new EventSource("/api/watch" + q(path));
    state.watch = source;
    $("watch-toggle").classList.add("on");
    $("watch-toggle").textContent = "Stop watching";
    $("watch-status").textContent = "connecting…";
    source.addEventListener("open", () => { $("watch-status").textContent = "live"; });
    source.addEventListener("data", (e) => {
      const msg = JSON.parse(e.data);
      if (msg.path !== state.path) return;
      $("watch-status").textContent = "live";
      if (state.node) {
        state.node.data = msg.data;
        state.node.stat = msg.stat;
        state.node.dataError = null;
        state.node.noauth = false;
      }
      renderData(msg.data);
      renderStat(msg.stat);
      show($("data-section"), true);
      if (!$("edit-data").dataset.dirty) {
        $("edit-data").value = msg.data.value;
        $("edit-encoding").value = msg.data.encoding;
        $("edit-version").textContent = "(loaded version " + msg.stat.version + ")";
      }
      logWatch("data: version " + msg.stat.version + ", " + msg.data.size + " bytes");
    });
    source.addEventListener("children", (e) => {
      const msg = JSON.parse(e.data);
      if (msg.path !== state.path) return;
      logWatch("children: " + msg.children.length);
      loadChildren(state.path);
    });
    source.addEventListener("deleted", (e) => {
      const msg = JSON.parse(e.data);
      if (msg.path !== state.path) return;
      $("watch-status").textContent = "deleted";
      logWatch("the node was deleted");
    });
    source.addEventListener("error", (e) => {
      if (e.data) {
        const msg = JSON.parse(e.data);
        logWatch(msg.error + ": " + (msg.message || ""));
        if (msg.final) {
          $("watch-status").textContent = msg.error;
          stopWatch(true);
        }
      } else if (state.watch === source) {
        $("watch-status").textContent = "reconnecting…";
      }
    });
  }

  function stopWatch(keepStatus) {
    if (state.watch) state.watch.close();
    state.watch = null;
    $("watch-toggle").classList.remove("on");
    $("watch-toggle").textContent = "Watch live";
    if (!keepStatus) $("watch-status").textContent = "";
  }

  // --- the ensemble page --------------------------------------------------------------------------

  function startEnsemble() {
    stopEnsemble();
    pollEnsemble();
    state.ensembleTimer = setInterval(pollEnsemble, POLL_MS);
  }

  function stopEnsemble() {
    if (state.ensembleTimer) clearInterval(state.ensembleTimer);
    state.ensembleTimer = null;
  }

  const fmt = (v, digits) => (v === null || v === undefined ? "–" : typeof v === "number" && digits !== undefined ? v.toFixed(digits) : String(v));

  async function pollEnsemble() {
    let sample;
    try {
      sample = await api("/api/ensemble");
    } catch (err) {
      $("ensemble-summary").textContent = errorText(err);
      return;
    }
    if (state.page !== "ensemble") return;
    const rows = sample.hosts.map((h) => {
      const role = h.ok ? (h.role || "?") : "down";
      return el("tr", { "data-host": h.host, "data-role": role },
        el("td", { text: h.host, title: h.error || "" }),
        el("td", { class: "role role-" + role, text: role }),
        el("td", { text: fmt(h.zxid) }), el("td", { text: fmt(h.epoch) }),
        el("td", { text: fmt(h.sessions) }), el("td", { text: fmt(h.connections) }),
        el("td", { text: fmt(h.znodes) }), el("td", { text: fmt(h.receivedPerSecond, 1) }),
        el("td", { text: fmt(h.avgLatencyMs, 2) }), el("td", { text: fmt(h.outstanding) }));
    });
    $("ensemble-table").tBodies[0].replaceChildren(...rows);
    const summary = $("ensemble-summary");
    summary.dataset.leader = sample.leader || "";
    summary.textContent = (sample.leader ? "Leader: " + sample.leader : "No leader") + " · " + sample.up + " of " +
      sample.hosts.length + " hosts answering" +
      (sample.receivedPerSecond !== null && sample.receivedPerSecond !== undefined ? " · " + sample.receivedPerSecond.toFixed(1) + " packets/s in all" : "");
    const t = sample.at;
    for (const h of sample.hosts) {
      const points = state.history.get(h.host) || [];
      points.push({ t, rate: h.ok ? h.receivedPerSecond : null, latency: h.ok ? h.avgLatencyMs : null });
      while (points.length > HISTORY_POINTS) points.shift();
      state.history.set(h.host, points);
    }
    document.body.dataset.samples = String(Number(document.body.dataset.samples || 0) + 1);
    drawChart($("chart-throughput"), "rate");
    drawChart($("chart-latency"), "latency");
    renderLegend();
    renderActors(sample.hosts);
  }

  function renderLegend() {
    const items = [...state.history.keys()].map((host, i) => el("span", {},
      swatch(COLORS[i % COLORS.length]), host));
    $("chart-legend").replaceChildren(...items);
  }

  function swatch(color) {
    const s = el("span", { class: "swatch" });
    s.style.background = color;
    return s;
  }

  function drawChart(canvas, key) {
    const ratio = window.devicePixelRatio || 1;
    const width = canvas.clientWidth || canvas.width;
    const height = canvas.clientHeight || canvas.height;
    if (canvas.width !== Math.round(width * ratio)) { canvas.width = Math.round(width * ratio); canvas.height = Math.round(height * ratio); }
    const ctx = canvas.getContext("2d");
    ctx.setTransform(ratio, 0, 0, ratio, 0, 0);
    ctx.clearRect(0, 0, width, height);
    const left = 48, right = 8, top = 8, bottom = 20;
    const series = [...state.history.entries()];
    let max = 0, tMin = Infinity, tMax = -Infinity;
    for (const [, points] of series) {
      for (const p of points) {
        if (p[key] !== null && p[key] !== undefined) max = Math.max(max, p[key]);
        tMin = Math.min(tMin, p.t); tMax = Math.max(tMax, p.t);
      }
    }
    max = max > 0 ? niceCeil(max) : 1;
    const span = Math.max(tMax - tMin, 10);
    const x = (t) => left + ((t - (tMax - span)) / span) * (width - left - right);
    const y = (v) => top + (1 - v / max) * (height - top - bottom);
    ctx.strokeStyle = "#e5e7eb"; ctx.fillStyle = "#6b7280"; ctx.font = "11px system-ui, sans-serif"; ctx.lineWidth = 1;
    for (let i = 0; i <= 4; i++) {
      const v = (max * i) / 4;
      ctx.beginPath(); ctx.moveTo(left, y(v)); ctx.lineTo(width - right, y(v)); ctx.stroke();
      ctx.fillText(formatAxis(v), 4, y(v) + 4);
    }
    ctx.fillText(Math.round(span) + " s", width - right - 30, height - 4);
    series.forEach(([, points], i) => {
      ctx.strokeStyle = COLORS[i % COLORS.length];
      ctx.lineWidth = 2;
      ctx.beginPath();
      let pen = false;
      for (const p of points) {
        const v = p[key];
        if (v === null || v === undefined) { pen = false; continue; }
        if (pen) ctx.lineTo(x(p.t), y(v)); else ctx.moveTo(x(p.t), y(v));
        pen = true;
      }
      ctx.stroke();
    });
  }

  function niceCeil(v) {
    const p = Math.pow(10, Math.floor(Math.log10(v)));
    for (const m of [1, 2, 2.5, 5, 10]) if (v <= m * p) return m * p;
    return 10 * p;
  }

  function formatAxis(v) {
    if (v >= 1e6) return (v / 1e6).toFixed(1) + "M";
    if (v >= 1e3) return (v / 1e3).toFixed(1) + "k";
    return v >= 10 ? String(Math.round(v)) : v.toFixed(v === 0 ? 0 : 2);
  }

  function renderActors(hosts) {
    const blocks = [];
    for (const h of hosts) {
      const names = Object.keys(h.actors || {}).sort();
      if (!names.length) continue;
      const rows = names.map((name) => {
        const a = h.actors[name];
        return el("tr", { "data-actor": name }, el("td", { text: name }), el("td", { text: fmt(a.cpuSeconds, 2) }),
          el("td", { text: a.rssBytes === undefined || a.rssBytes === null ? "–" : (a.rssBytes / 1048576).toFixed(1) }),
          el("td", { text: fmt(a.restarts) }));
      });
      blocks.push(el("h4", { text: h.host }), el("table", {},
        el("thead", {}, el("tr", {}, el("th", { text: "actor" }), el("th", { text: "CPU s" }), el("th", { text: "RSS MiB" }), el("th", { text: "restarts" }))),
        el("tbody", {}, ...rows)));
    }
    if (blocks.length) $("actors").replaceChildren(...blocks);
    else $("actors").replaceChildren(el("p", { class: "muted", text: "No per-actor figures reported by the nodes." }));
  }

  // --- login ------------------------------------------------------------------------------------

  async function login(event) {
    event.preventDefault();
    const user = $("login-user").value;
    const password = $("login-password").value;
    $("login-password").value = "";
    try {
      await api("/api/login", { method: "POST", body: { user, password } });
      await loadSession();
      flash("Logged in as digest:" + user);
      if (state.page === "tree") openNode(state.path);
    } catch (err) {
      flash(errorText(err), true);
    }
  }

  async function logout() {
    try {
      const res = await api("/api/logout", { method: "POST" });
      state.csrf = res.csrf;
      await loadSession();
      flash("Logged out: this browser session has a new zoomq client");
      if (state.page === "tree") openNode(state.path);
    } catch (err) {
      flash(errorText(err), true);
    }
  }

  // --- wiring -----------------------------------------------------------------------------------

  function wire() {
    document.addEventListener("click", (e) => {
      const a = e.target.closest("a[href]");
      if (!a || a.origin !== location.origin || e.ctrlKey || e.metaKey || e.shiftKey || e.button !== 0) return;
      if (a.pathname === "/tree" || a.pathname === "/ensemble") {
        e.preventDefault();
        go(a.pathname + a.search);
      }
    });
    window.addEventListener("popstate", route);
    $("edit-form").addEventListener("submit", saveEdit);
    $("edit-reload").addEventListener("click", () => { say("edit-result", ""); loadNode(state.path); });
    $("edit-data").addEventListener("input", () => { $("edit-data").dataset.dirty = "1"; });
    $("create-form").addEventListener("submit", createChild);
    $("create-kind").addEventListener("change", onKindChange);
    $("delete-button").addEventListener("click", askDelete);
    $("delete-confirm-yes").addEventListener("click", confirmDelete);
    $("delete-confirm-no").addEventListener("click", cancelDelete);
    $("watch-toggle").addEventListener("click", () => (state.watch ? stopWatch() : startWatch()));
    $("login-form").addEventListener("submit", login);
    $("logout-button").addEventListener("click", logout);
    window.addEventListener("pagehide", () => stopWatch());
  }

  async function main() {
    wire();
    try {
      await loadSession();
    } catch (err) {
      flash(errorText(err), true);
    }
    route();
    document.body.dataset.ready = "1";
  }

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", main);
  else main();
})();
