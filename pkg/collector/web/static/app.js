"use strict";
// The collector's page: reads /api/v1/flows and /api/v1/summary with the
// filter fields as query parameters and refreshes every few seconds. With a
// token given in the Token field (kept in sessionStorage: this tab only,
// gone when it closes), every request carries it as Authorization: Bearer;
// behind an OAuth proxy, the proxy adds the user's token and none is needed.
(function () {
  const fields = ["iface", "pod", "network", "node"];
  const refreshMs = 2000;
  const tokenKey = "nsint-collector-token";
  let timer = null;

  function token() {
    try { return sessionStorage.getItem(tokenKey) || ""; } catch (e) { return ""; }
  }

  let memToken = token();

  function setToken(v) {
    try {
      if (v) sessionStorage.setItem(tokenKey, v); else sessionStorage.removeItem(tokenKey);
    } catch (e) { /* storage off: the token lasts until reload */ }
    memToken = v;
    showToken();
  }

  function showToken() {
    $("token-state").textContent = memToken ? "token set for this tab" : "no token";
  }

  function $(id) { return document.getElementById(id); }

  function params() {
    const q = new URLSearchParams();
    for (const f of fields) {
      const v = $(f).value.trim();
      if (v !== "") q.set(f, v);
    }
    if ($("drops").checked) q.set("drops", "true");
    return q;
  }

  function fromLocation() {
    const q = new URLSearchParams(location.search);
    for (const f of fields) if (q.has(f)) $(f).value = q.get(f);
    $("drops").checked = q.get("drops") === "true";
  }

  function bytes(n) {
    const u = ["B", "KiB", "MiB", "GiB", "TiB"];
    let i = 0;
    while (n >= 1024 && i < u.length - 1) { n /= 1024; i++; }
    return (i === 0 ? n : n.toFixed(1)) + " " + u[i];
  }

  function ns(v) {
    if (v === null || v === undefined) return "–";
    if (v < 1000) return v + "ns";
    if (v < 1e6) return (v / 1e3).toFixed(1) + "µs";
    return (v / 1e6).toFixed(2) + "ms";
  }

  function latency(o) {
    if (o.latencyMinNs === null || o.latencyMinNs === undefined) return "–";
    return ns(o.latencyMinNs) + " / " + ns(o.latencyAvgNs) + " / " + ns(o.latencyMaxNs);
  }

  function pod(o) {
    if (o.pod) return o.pod.namespace + "/" + o.pod.name;
    if (o.netns && o.netns.name) return "netns " + o.netns.name;
    return "–";
  }

  function endpoint(addr, port, proto) {
    if (!addr) return "–";
    const withPort = proto === "tcp" || proto === "udp" || proto === "sctp";
    if (!withPort) return addr;
    return (addr.includes(":") ? "[" + addr + "]" : addr) + ":" + port;
  }

  function drops(total, reasons, names) {
    if (!total) return "0";
    const parts = Object.keys(reasons || {}).sort().map(
      (c) => (names[c] || "code " + c) + " ×" + reasons[c]);
    return total + " (" + parts.join(", ") + ")";
  }

  function cell(tr, text, cls) {
    const td = document.createElement("td");
    td.textContent = text;
    if (cls) td.className = cls;
    tr.appendChild(td);
  }

  function renderFlows(data) {
    const body = $("flows").tBodies[0];
    const rows = [];
    for (const f of data.flows) {
      const tr = document.createElement("tr");
      tr.dataset.interface = f.interface;
      tr.dataset.direction = f.direction;
      tr.dataset.pod = f.pod ? f.pod.namespace + "/" + f.pod.name : "";
      if (f.drops > 0) tr.className = "drop";
      cell(tr, f.node);
      cell(tr, pod(f));
      cell(tr, f.interface);
      cell(tr, f.direction);
      cell(tr, f.network || "–");
      cell(tr, f.proto || "–");
      cell(tr, endpoint(f.src, f.srcPort, f.proto));
      cell(tr, endpoint(f.dst, f.dstPort, f.proto));
      cell(tr, f.packets, "num");
      cell(tr, bytes(f.bytes), "num");
      cell(tr, f.reports, "num");
      cell(tr, drops(f.drops, f.dropReasons, data.dropReasonNames || {}), "num");
      cell(tr, latency(f));
      cell(tr, new Date(f.lastSeen).toLocaleTimeString());
      rows.push(tr);
    }
    body.replaceChildren(...rows);
    $("count").textContent = data.matched > data.flows.length
      ? "(" + data.flows.length + " of " + data.matched + ")"
      : "(" + data.flows.length + ")";
  }

  function worst(a, b, pick) {
    const vs = [a[pick], b[pick]].filter((v) => v !== null && v !== undefined);
    if (vs.length === 0) return null;
    return pick === "latencyMinNs" ? Math.min(...vs) : Math.max(...vs);
  }

  function renderSummary(data) {
    const body = $("summary").tBodies[0];
    const rows = [];
    for (const s of data.interfaces) {
      const tr = document.createElement("tr");
      tr.dataset.interface = s.interface;
      const dropTotal = s.ingress.drops + s.egress.drops;
      const reasons = {};
      for (const side of [s.ingress, s.egress]) {
        for (const [c, n] of Object.entries(side.dropReasons || {})) reasons[c] = (reasons[c] || 0) + n;
      }
      if (dropTotal > 0) tr.className = "drop";
      cell(tr, s.node);
      cell(tr, pod(s));
      cell(tr, s.interface);
      cell(tr, s.network || "–");
      cell(tr, s.flows, "num");
      cell(tr, s.ingress.packets, "num");
      cell(tr, bytes(s.ingress.bytes), "num");
      cell(tr, s.egress.packets, "num");
      cell(tr, bytes(s.egress.bytes), "num");
      cell(tr, drops(dropTotal, reasons, data.dropReasonNames || {}), "num");
      const both = {
        latencyMinNs: worst(s.ingress, s.egress, "latencyMinNs"),
        latencyMaxNs: worst(s.ingress, s.egress, "latencyMaxNs"),
        latencyAvgNs: worst(s.ingress, s.egress, "latencyAvgNs"),
      };
      cell(tr, latency(both));
      rows.push(tr);
    }
    body.replaceChildren(...rows);
  }

  // One line per agent whose sequence numbers show lost reports: their
  // packets, bytes and drops are missing from every figure on the page.
  function renderLosses(agents) {
    const lines = [];
    for (const a of agents || []) {
      if (!a.lostReports) continue;
      const p = document.createElement("p");
      p.className = "loss";
      p.dataset.agent = a.source;
      p.dataset.lost = a.lostReports;
      const name = a.node ? a.node + " (" + a.source + ")" : a.source;
      p.textContent = name + ": " + a.lostReports + (a.lostReports === 1 ? " report" : " reports") +
        " lost — totals may be short";
      lines.push(p);
    }
    $("losses").replaceChildren(...lines);
    $("losses").hidden = lines.length === 0;
  }

  async function getJSON(url) {
    const headers = {};
    if (memToken) headers["Authorization"] = "Bearer " + memToken;
    const r = await fetch(url, { cache: "no-store", headers: headers });
    if (r.status === 401) {
      throw new Error(memToken
        ? "Not authenticated (401): the token was not accepted; give another one in the Token field."
        : "Not authenticated (401): give a bearer token in the Token field (for example from `kubectl create token`).");
    }
    if (r.status === 403) {
      throw new Error("Forbidden (403): this token's user may not read the collector's views.");
    }
    let body = {};
    try { body = await r.json(); } catch (e) { if (r.ok) throw e; }
    if (!r.ok) throw new Error(body.error || r.status + " " + r.statusText);
    return body;
  }

  async function refresh() {
    const q = params();
    const summaryQ = new URLSearchParams(q);
    summaryQ.delete("drops");
    try {
      const [flows, summary] = await Promise.all([
        getJSON("api/v1/flows?" + q.toString()),
        getJSON("api/v1/summary?" + summaryQ.toString()),
      ]);
      renderFlows(flows);
      renderSummary(summary);
      renderLosses(summary.agents);
      $("error").hidden = true;
      $("status").textContent = "updated " + new Date().toLocaleTimeString();
      document.body.dataset.loaded = q.toString() || "all";
    } catch (e) {
      $("error").textContent = e.message;
      $("error").hidden = false;
      $("status").textContent = "error";
      document.body.dataset.loaded = "";
    }
  }

  function schedule() {
    if (timer) clearInterval(timer);
    timer = $("live").checked ? setInterval(refresh, refreshMs) : null;
  }

  $("filters").addEventListener("submit", (ev) => {
    ev.preventDefault();
    const q = params().toString();
    history.replaceState(null, "", q ? "?" + q : location.pathname);
    refresh();
  });
  $("auth").addEventListener("submit", (ev) => {
    ev.preventDefault();
    const v = $("token").value.trim();
    $("token").value = "";
    setToken(v);
    refresh();
  });
  $("token-forget").addEventListener("click", () => {
    $("token").value = "";
    setToken("");
    refresh();
  });
  $("live").addEventListener("change", schedule);
  showToken();
  fromLocation();
  refresh();
  schedule();
})();
