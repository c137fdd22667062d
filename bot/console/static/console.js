/* supportbot operator console: vanilla JavaScript, no build step.
 *
 * Every page is this one script over the page shell; the data comes from the operator API,
 * called with the session cookie. Anything that changes state sends the session's CSRF token
 * (from <meta name="csrf-token">) as X-CSRF-Token. Text from the API is only ever set as
 * textContent, never parsed as HTML.
 */
"use strict";

(function () {
  const CSRF = document.querySelector('meta[name="csrf-token"]').content;
  const main = document.getElementById("main");
  const announcer = document.getElementById("announce");
  const INBOX_POLL_MS = 1000;
  const THREAD_POLL_MS = 2000;
  const COLORS = ["#2457c5", "#d9822b", "#1e7a3c", "#8e44ad", "#b3261e", "#138a8a"];
  const SVG_NS = "http://www.w3.org/2000/svg";

  // -- helpers -----------------------------------------------------------------------------

  function h(tag, attrs, ...children) {
    const el = document.createElement(tag);
    for (const [key, value] of Object.entries(attrs || {})) {
      if (value === null || value === undefined || value === false) continue;
      if (key === "class") el.className = value;
      else if (key === "style") el.style.cssText = value;  // CSSOM: allowed by the CSP
      else if (key.startsWith("on")) el.addEventListener(key.slice(2), value);
      else el.setAttribute(key, value === true ? "" : String(value));
    }
    for (const child of children.flat()) {
      if (child === null || child === undefined || child === false) continue;
      el.append(child instanceof Node ? child : document.createTextNode(String(child)));
    }
    return el;
  }

  function svg(tag, attrs, ...children) {
    const el = document.createElementNS(SVG_NS, tag);
    for (const [key, value] of Object.entries(attrs || {})) el.setAttribute(key, String(value));
    for (const child of children.flat()) {
      if (child === null || child === undefined) continue;
      el.append(child instanceof Node ? child : document.createTextNode(String(child)));
    }
    return el;
  }

  function announce(text) {
    announcer.textContent = "";
    window.setTimeout(() => { announcer.textContent = text; }, 50);
  }

  class ApiError extends Error {
    constructor(status, message) { super(message); this.status = status; }
  }

  async function api(method, path, body) {
    const headers = { Accept: "application/json" };
    if (method !== "GET") headers["X-CSRF-Token"] = CSRF;
    if (body !== undefined) headers["Content-Type"] = "application/json";
    const response = await fetch(path, {
      method, headers, credentials: "same-origin",
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    if (response.status === 401) {
      window.location.assign("/console");  // the session ended: back to the sign-in
      throw new ApiError(401, "signed out");
    }
    const text = await response.text();
    let data = null;
    try { data = text ? JSON.parse(text) : null; } catch (_) { data = null; }
    if (!response.ok) {
      const message = (data && data.error && data.error.message) || `HTTP ${response.status}`;
      throw new ApiError(response.status, message);
    }
    return data;
  }

  function duration(seconds) {
    if (seconds === null || seconds === undefined) return "–";
    const s = Math.max(0, Math.round(seconds));
    if (s < 60) return `${s}s`;
    if (s < 3600) return `${Math.floor(s / 60)}m ${s % 60}s`;
    if (s < 86400) return `${Math.floor(s / 3600)}h ${Math.floor((s % 3600) / 60)}m`;
    return `${Math.floor(s / 86400)}d ${Math.floor((s % 86400) / 3600)}h`;
  }

  function when(unix) {
    return new Date(unix * 1000).toLocaleString(undefined, { dateStyle: "medium", timeStyle: "short" });
  }

  function percent(ratio) {
    return ratio === null || ratio === undefined ? "–" : `${(ratio * 100).toFixed(1)}%`;
  }

  function money(value) {
    if (value === null || value === undefined) return "–";
    return value < 1 ? value.toFixed(4) : value.toFixed(2);
  }

  function page(title, intro, ...content) {
    document.title = `${title} · supportbot console`;
    main.replaceChildren(
      h("div", { class: "page-head" }, h("h1", {}, title), intro ? h("p", { class: "muted" }, intro) : null),
      ...content.flat().filter(Boolean),
    );
    main.setAttribute("aria-busy", "false");
  }

  function failure(error) {
    return h("p", { class: "error", role: "alert" }, `Could not load: ${error.message}`);
  }

  function markNav(name) {
    for (const link of document.querySelectorAll(".top nav a")) {
      if (link.dataset.page === name) link.setAttribute("aria-current", "page");
      else link.removeAttribute("aria-current");
    }
  }

  // -- inbox ---------------------------------------------------------------------------------

  async function inboxPage() {
    markNav("inbox");
    const status = h("p", { class: "muted", id: "inbox-status" }, "Loading…");
    const body = h("tbody");
    const table = h("div", { class: "table-wrap" }, h("table", { class: "inbox", "aria-describedby": "inbox-status" },
      h("caption", { class: "visually-hidden" }, "Threads that need a person, most urgent first"),
      h("thead", {}, h("tr", {},
        h("th", { scope: "col" }, "Priority"), h("th", { scope: "col" }, "Customer"),
        h("th", { scope: "col" }, "Reason / last message"),
        h("th", { scope: "col", class: "hide-narrow" }, "Channel"),
        h("th", { scope: "col", class: "num" }, "Waiting"))),
      body));
    page("Inbox", "Threads that need a person, by priority and waiting time. Updated every second.",
      status, table);
    let known = null;
    async function refresh() {
      let data;
      try {
        data = (await api("GET", "/v1/inbox")).data;
      } catch (error) {
        status.textContent = `Could not refresh: ${error.message}`;
        return;
      }
      // Rows are rebuilt only when the list itself changed; otherwise only the waiting times
      // tick, so a link being clicked or holding keyboard focus is never swapped out.
      const shape = JSON.stringify(data.map((t) => [t.id, t.priority, t.reason, t.last_message, t.customer]));
      if (shape === known) {
        for (const thread of data) {
          const cell = body.querySelector(`tr[data-thread="${CSS.escape(thread.id)}"] .c-waiting .value`);
          if (cell) cell.textContent = waited(thread);
        }
        return;
      }
      const before = known === null ? null : JSON.parse(known).length;
      if (before !== null && data.length > before) announce(`${data.length} threads need a person`);
      known = shape;
      status.textContent = data.length === 1 ? "1 thread needs a person." : `${data.length} threads need a person.`;
      const focused = document.activeElement && document.activeElement.closest("tr[data-thread]");
      const focusedId = focused ? focused.dataset.thread : null;
      body.replaceChildren(...(data.length ? data.map(inboxRow) : [
        h("tr", {}, h("td", { colspan: 5, class: "empty" }, "Nothing waiting. The bot has everything in hand.")),
      ]));
      if (focusedId) {
        const again = body.querySelector(`tr[data-thread="${CSS.escape(focusedId)}"] a`);
        if (again) again.focus();
      }
    }
    await refresh();
    const timer = window.setInterval(() => { if (!document.hidden) refresh(); }, INBOX_POLL_MS);
    window.addEventListener("pagehide", () => window.clearInterval(timer));
  }

  function inboxRow(thread) {
    const summary = thread.reason || thread.last_message || thread.title || "(no message)";
    return h("tr", { "data-thread": thread.id },
      h("td", { class: "c-priority" }, h("span", { class: `badge ${thread.priority}` }, thread.priority)),
      h("td", { class: "c-customer" }, h("a", { href: `/console/threads/${encodeURIComponent(thread.id)}` }, thread.customer)),
      h("td", { class: "c-summary clip" }, summary,
        thread.reason && thread.last_message ? h("div", { class: "muted" }, thread.last_message) : null),
      h("td", { class: "c-channel hide-narrow" }, thread.channel),
      h("td", { class: "c-waiting num" }, h("span", { class: "visually-hidden" }, "waiting "),
        h("span", { class: "value" }, waited(thread))));
  }

  // Since the customer's first message nothing answered; a person answered last: nobody waits.
  function waited(thread) {
    return thread.waiting_since === null ? "answered" : duration(thread.waiting_seconds);
  }

  // -- thread --------------------------------------------------------------------------------

  async function threadPage(threadId) {
    markNav("inbox");
    let data;
    try {
      data = await api("GET", `/v1/threads/${encodeURIComponent(threadId)}/transcript`);
    } catch (error) {
      page("Thread", null, failure(error));
      return;
    }
    const transcript = h("section", { class: "transcript", "aria-label": "Transcript" });
    const head = h("ul", { class: "meta" });
    const feedback = h("p", { class: "status", role: "status" });
    const controls = threadControls(threadId, feedback, async () => render(await load()));
    const external = data.customer.external_id || "";
    const customer = data.customer.display_name
      || (!external || external.startsWith("anon:") ? "a guest" : external);
    page(`Thread with ${customer}`, null,
      head, h("h2", {}, "Transcript"), transcript, controls);

    async function load() {
      return api("GET", `/v1/threads/${encodeURIComponent(threadId)}/transcript`);
    }
    let shown = "";
    function render(latest) {
      const t = latest.thread;
      head.replaceChildren(
        h("li", {}, "State ", h("span", { class: `badge ${t.state}` }, t.state)),
        h("li", {}, "Held by ", h("b", {}, t.control === "human" ? "a person" : "the bot")),
        h("li", {}, "Channel ", h("b", {}, t.channel)),
        h("li", {}, "Agent ", h("b", {}, latest.agent.slug)),
        h("li", {}, "Started ", h("b", {}, when(t.created_at))));
      // People's replies (``person_messages``) and the customer's messages no turn answered
      // (``customer_messages``: kept while a person holds the thread, or still waiting for the
      // bot) interleave with the turns by time.
      // Only a thread a person holds can be handed back; the bot holding it already, the
      // button would do nothing.
      controls.querySelector(".hand-back").hidden = t.control !== "human";
      const people = latest.person_messages || [];
      const waiting = latest.customer_messages || [];
      const key = JSON.stringify([t.state, t.control, latest.runs.map((r) => [r.id, r.feedback.length]),
        people.map((m) => m.id), waiting.map((m) => [m.id, m.status])]);
      if (key === shown) return;
      shown = key;
      const timeline = [
        ...latest.runs.map((run) => [run.started_at, runItems(run)]),
        ...people.map((m) => [m.created_at, [h("article", { class: "msg person", "aria-label": "Person" },
          h("div", { class: "who" }, `${(m.author && m.author.name) || "A person"} · ${when(m.created_at)}`),
          h("div", { class: "text" }, m.content))]]),
        ...waiting.map((m) => [m.created_at, [h("article", { class: "msg customer", "aria-label": "Customer" },
          h("div", { class: "who" }, `Customer · ${when(m.created_at)}`,
            m.status === "pending" ? " · waiting for the bot" : ""),
          h("div", { class: "text" }, m.content || "(attachment)"))]]),
      ].sort((a, b) => a[0] - b[0]);
      // A refresh must not fold what the operator opened (tool calls, passages): the page
      // would jump under them while they read.
      const opened = new Set([...transcript.querySelectorAll("details[open]")].map(detailsKey));
      transcript.replaceChildren(...timeline.flatMap(([, items]) => items));
      for (const details of transcript.querySelectorAll("details")) {
        if (opened.has(detailsKey(details))) details.open = true;
      }
      if (!timeline.length) transcript.append(h("p", { class: "muted" }, "No turns yet."));
    }
    render(data);
    const timer = window.setInterval(async () => {
      if (document.hidden) return;
      try { render(await load()); } catch (_) { /* the next poll tries again */ }
    }, THREAD_POLL_MS);
    window.addEventListener("pagehide", () => window.clearInterval(timer));
  }

  function detailsKey(details) {
    const run = details.closest("[data-run]");
    const summary = details.querySelector("summary");
    return `${run ? run.dataset.run : ""}|${summary ? summary.textContent.split(" (")[0] : ""}`;
  }

  function runItems(run) {
    const items = [];
    for (const entry of run.input || []) {
      if (entry.role && entry.role !== "user") continue;
      const text = typeof entry.content === "string" ? entry.content
        : (entry.content || []).map((p) => p.text || "").join("\n");
      items.push(h("article", { class: "msg customer", "aria-label": "Customer" },
        h("div", { class: "who" }, `Customer · ${when(run.started_at)}`),
        h("div", { class: "text" }, text || "(attachment)")));
    }
    const usage = run.usage || {};
    // Passages only: a provider's own diagnostics may ride along without a title or text.
    const passages = (run.rag_results || []).filter((p) => p.title || p.text);
    const ratings = (run.feedback || []).map((f) =>
      h("li", {}, "Customer rated it ", h("b", {}, f.rating === "up" ? "helpful" : "not helpful"),
        f.comment ? ` — “${f.comment}”` : ""));
    items.push(h("article", { class: "msg bot", "aria-label": "Bot", "data-run": run.id },
      h("div", { class: "who" }, `Bot · ${run.stop_reason}`),
      h("div", { class: "text" }, run.output_text || (run.error ? `(failed: ${run.error})` : "(no reply)")),
      h("ul", { class: "meta" },
        h("li", {}, "Model ", h("b", {}, run.model || "–")),
        h("li", {}, "Version ", h("b", {}, run.agent_version === null ? "configured" : `v${run.agent_version}`)),
        h("li", {}, "Latency ", h("b", {}, `${Math.round(run.latency_ms)} ms`)),
        h("li", {}, "Tokens ", h("b", {}, `${usage.input_tokens || 0} in / ${usage.output_tokens || 0} out`)),
        h("li", {}, "Cost ", h("b", {}, money(run.cost)))),
      ratings.length ? h("ul", { class: "meta", "aria-label": "Customer feedback" }, ratings) : null,
      run.tool_calls && run.tool_calls.length ? h("details", {},
        h("summary", {}, `Tool calls (${run.tool_calls.length})`),
        run.tool_calls.map((call) => h("div", {},
          h("h3", {}, `${call.name} · ${Math.round(call.latency_ms)} ms`),
          h("div", { class: "muted" }, "arguments"),
          h("pre", {}, JSON.stringify(call.arguments, null, 2)),
          h("div", { class: "muted" }, call.error ? "error" : "result"),
          h("pre", {}, call.error ? call.error : JSON.stringify(call.result, null, 2))))) : null,
      passages.length ? h("details", {},
        h("summary", {}, `Retrieved passages (${passages.length})`),
        passages.map((p) => h("div", { class: "passage" },
          h("h3", {}, [p.title, p.heading].filter(Boolean).join(" › ")),
          scoreMeter(p.score),
          h("div", { class: "muted" }, p.source || ""),
          h("pre", {}, p.text || "")))) : null));
    return items;
  }

  function scoreMeter(score) {
    const value = typeof score === "number" ? score : 0;
    return h("span", { class: "score" }, "score",
      h("span", { class: "bar", role: "img", "aria-label": `score ${value.toFixed(2)}` },
        h("span", { style: `width:${Math.round(Math.min(1, value) * 100)}%` })),
      value.toFixed(2));
  }

  function threadControls(threadId, status, refresh) {
    const name = h("input", { id: "author", name: "author", autocomplete: "name", required: true,
      value: localStorage.getItem("sb-console-author") || "" });
    const text = h("textarea", { id: "reply", name: "reply", required: true });
    const base = `/v1/threads/${encodeURIComponent(threadId)}`;
    async function act(label, method, path, body) {
      status.textContent = `${label}…`;
      try {
        await api(method, path, body);
        status.textContent = `${label}: done.`;
        await refresh();
        return true;
      } catch (error) {
        status.textContent = `${label} failed: ${error.message}`;
        return false;
      }
    }
    const form = h("form", { class: "panel controls", "aria-label": "Reply to the customer",
      onsubmit: async (event) => {
        event.preventDefault();
        const content = text.value.trim();
        if (!content || !name.value.trim()) return;
        localStorage.setItem("sb-console-author", name.value.trim());
        if (await act("Reply", "POST", `${base}/messages`, { content, author: { name: name.value.trim() } })) {
          text.value = "";
        }
      } },
      h("label", { for: "reply" }, "Reply as a person"),
      text,
      h("div", { class: "row" },
        h("div", {}, h("label", { for: "author" }, "Your name"), name),
        h("button", { type: "submit", class: "primary" }, "Send reply"),
        h("button", { type: "button", class: "hand-back", hidden: true,
          onclick: () => act("Hand back", "POST", `${base}/handback`) },
          "Hand back to the bot"),
        h("button", { type: "button", class: "danger", onclick: () => act("Close", "POST", `${base}/close`) },
          "Close thread")),
      status);
    return form;
  }

  // -- knowledge -----------------------------------------------------------------------------

  async function knowledgePage() {
    markNav("knowledge");
    const results = h("div", { "aria-live": "polite" });
    const query = h("input", { id: "q", name: "q", type: "search", placeholder: "How do I reset my password?" });
    const search = h("form", { class: "panel", role: "search", onsubmit: async (event) => {
      event.preventDefault();
      results.replaceChildren(h("p", { class: "muted" }, "Searching…"));
      try {
        const found = (await api("GET", `/v1/knowledge/search?q=${encodeURIComponent(query.value)}`)).data;
        results.replaceChildren(found.length ? h("ol", {}, found.map((p) => h("li", { class: "passage" },
          h("h3", {}, [p.title, p.heading].filter(Boolean).join(" › ")), scoreMeter(p.score),
          h("div", { class: "muted" }, p.source), h("p", {}, p.text))))
          : h("p", { class: "muted" }, "Nothing retrieved: the agent would have no passage for this question."));
      } catch (error) { results.replaceChildren(failure(error)); }
    } },
      h("label", { for: "q" }, "Search preview: what the agent retrieves for a question"),
      h("div", { class: "row" }, query, h("button", { type: "submit", class: "primary" }, "Search")),
      results);
    let documents = [];
    try { documents = (await api("GET", "/v1/knowledge/documents")).data; } catch (error) {
      page("Knowledge", null, search, failure(error));
      return;
    }
    page("Knowledge", `${documents.length} documents indexed.`, search,
      h("h2", {}, "Documents"),
      h("div", { class: "table-wrap" }, h("table", {},
        h("thead", {}, h("tr", {}, h("th", { scope: "col" }, "Title"), h("th", { scope: "col" }, "Citation"),
          h("th", { scope: "col", class: "hide-narrow" }, "Source"), h("th", { scope: "col", class: "num" }, "Chunks"),
          h("th", { scope: "col", class: "hide-narrow" }, "Updated"))),
        h("tbody", {}, documents.length ? documents.map((d) => h("tr", {},
          h("td", {}, d.url ? h("a", { href: d.url, rel: "noopener noreferrer" }, d.title) : d.title),
          h("td", { class: "clip" }, d.citation || ""),
          h("td", { class: "hide-narrow" }, d.source || "files"),
          h("td", { class: "num" }, d.chunks),
          h("td", { class: "hide-narrow" }, d.updated_at ? when(d.updated_at) : "")))
          : h("tr", {}, h("td", { colspan: 5, class: "empty" }, "No documents yet."))))));
  }

  // -- agents --------------------------------------------------------------------------------

  async function agentsPage() {
    markNav("agents");
    let agents;
    try { agents = (await api("GET", "/v1/agents")).data; } catch (error) {
      page("Agents", null, failure(error));
      return;
    }
    const status = h("p", { class: "status", role: "status" });
    async function act(label, path, body) {
      status.textContent = `${label}…`;
      try {
        await api("POST", path, body);
        announce(`${label}: done`);
        await agentsPage();
      } catch (error) { status.textContent = `${label} failed: ${error.message}`; }
    }
    page("Agents", "Publish the configured agent as a version, make a version live, or roll back.",
      status, agents.map((agent) => {
        const slug = encodeURIComponent(agent.slug);
        const note = h("input", { id: `note-${agent.slug}`, name: "note", maxlength: 500, placeholder: "what changed" });
        return h("section", { class: "panel", "aria-labelledby": `agent-${agent.slug}` },
          h("h2", { id: `agent-${agent.slug}` }, `${agent.name} (${agent.slug})`),
          h("p", {}, agent.live_version ? `Live: version ${agent.live_version}` : "Live: the configuration as it is (no version published)."),
          h("form", { class: "row", onsubmit: (event) => {
            event.preventDefault();
            act(`Publish ${agent.slug}`, `/v1/agents/${slug}/versions`, { note: note.value });
          } },
            h("div", {}, h("label", { for: `note-${agent.slug}` }, "Note"), note),
            h("button", { type: "submit", class: "primary" }, "Publish current configuration")),
          h("h3", { style: "margin-top:1rem" }, "Versions"),
          agent.versions.length ? h("div", { class: "table-wrap" }, h("table", {},
            h("thead", {}, h("tr", {}, h("th", { scope: "col" }, "Version"), h("th", { scope: "col" }, "Note"),
              h("th", { scope: "col", class: "hide-narrow" }, "Model"),
              h("th", { scope: "col", class: "hide-narrow" }, "Published"), h("th", { scope: "col" }, ""))),
            h("tbody", {}, agent.versions.map((v) => {
              const live = v.version === agent.live_version;
              const label = live ? null : (agent.live_version && v.version < agent.live_version ? "Roll back" : "Promote");
              return h("tr", {},
                h("td", {}, `v${v.version} `, live ? h("span", { class: "badge closed" }, "live") : null),
                h("td", {}, v.note || ""), h("td", { class: "hide-narrow" }, v.model || "(default)"),
                h("td", { class: "hide-narrow" }, when(v.created_at)),
                h("td", {}, label ? h("button", {
                  type: "button", "aria-label": `${label} to version ${v.version}`,
                  onclick: () => act(`${label} to v${v.version}`, `/v1/agents/${slug}/live`, { version: v.version }),
                }, label) : null));
            }))))
            : h("p", { class: "muted" }, "No published versions yet."));
      }));
  }

  // -- analytics -----------------------------------------------------------------------------

  async function analyticsPage() {
    markNav("analytics");
    const params = new URLSearchParams(window.location.search);
    const days = Number(params.get("days")) || 30;
    const channel = params.get("channel") || "";
    const until = Date.now() / 1000;
    const query = new URLSearchParams({ since: String(Math.floor(until - days * 86400)), until: String(Math.ceil(until)) });
    if (channel) query.set("channel", channel);
    let report;
    try { report = await api("GET", `/v1/analytics?${query}`); } catch (error) {
      page("Analytics", null, failure(error));
      return;
    }
    const daysSelect = h("select", { id: "days", name: "days" },
      [7, 14, 30, 90, 365].map((n) => h("option", { value: n, selected: n === days }, `Last ${n} days`)));
    const channelSelect = h("select", { id: "channel", name: "channel" },
      h("option", { value: "" }, "All channels"),
      [...new Set([...report.channels, channel].filter(Boolean))].map((c) => h("option", { value: c, selected: c === channel }, c)));
    const filters = h("form", { class: "row panel", method: "get", action: "/console/analytics" },
      h("div", {}, h("label", { for: "days" }, "Period"), daysSelect),
      h("div", {}, h("label", { for: "channel" }, "Channel"), channelSelect),
      h("button", { type: "submit" }, "Show"));
    const kpi = (label, value, sub) => h("div", { class: "kpi" },
      h("div", { class: "label" }, label), h("div", { class: "value" }, value), sub ? h("div", { class: "sub" }, sub) : null);
    const votes = report.csat.up + report.csat.down;
    const kpis = h("section", { class: "kpis", "aria-label": "Key figures" },
      kpi("Conversations", report.conversations),
      kpi("Resolved by the bot", percent(report.automated_resolution_rate), `${report.automated_resolutions} threads`),
      kpi("Escalated", percent(report.escalation_rate), `${report.escalations} threads`),
      kpi("First response", duration(report.first_response_seconds.p50), `p95 ${duration(report.first_response_seconds.p95)}`),
      kpi("Resolution", duration(report.resolution_seconds.p50), `p95 ${duration(report.resolution_seconds.p95)}`),
      kpi("CSAT", votes ? percent(report.csat.up / votes) : "–", `${report.csat.up} helpful · ${report.csat.down} not`),
      kpi("Cost", money(report.cost.total), `per resolution ${money(report.cost.per_resolution)}`));
    const series = report.series;
    const charts = h("section", { class: "charts", "aria-label": "Charts" },
      chart("Conversations per day", series, report.channels, (d) => d.conversations),
      chart("Resolved by the bot per day", series, report.channels, (d) => d.automated),
      chart("Escalations per day", series, report.channels, (d) => d.escalated),
      chart("Cost per day", series, report.channels, (d) => d.cost, money));
    const reasons = Object.entries(report.escalations_by_reason);
    const most = Math.max(1, ...reasons.map(([, n]) => n));
    page("Analytics", `Threads started in the last ${days} days${channel ? ` on ${channel}` : ""}.`,
      filters, kpis, charts,
      h("section", { class: "panel bars", "aria-labelledby": "reasons-h" },
        h("h2", { id: "reasons-h" }, "Escalations by reason"),
        reasons.length ? h("ul", {}, reasons.map(([reason, n]) => h("li", {},
          h("span", { class: "clip" }, reason),
          h("span", { class: "track", role: "img", "aria-label": `${n} escalations` },
            h("span", { class: "fill", style: `display:block;width:${Math.round((n / most) * 100)}%` })),
          h("span", { class: "num" }, n)))) : h("p", { class: "muted" }, "No escalations.")),
      h("section", { "aria-labelledby": "gaps-h" },
        h("h2", { id: "gaps-h" }, "Content gaps"),
        h("p", { class: "muted" }, "Customer questions the knowledge base had no confident passage for."),
        h("div", { class: "table-wrap" }, h("table", {},
          h("thead", {}, h("tr", {}, h("th", { scope: "col" }, "Question"), h("th", { scope: "col", class: "num" }, "Asked"))),
          h("tbody", {}, report.content_gaps.length ? report.content_gaps.map((g) => h("tr", {},
            h("td", {}, g.thread_ids.length ? h("a", { href: `/console/threads/${encodeURIComponent(g.thread_ids[0])}` }, g.question) : g.question),
            h("td", { class: "num" }, g.count)))
            : h("tr", {}, h("td", { colspan: 2, class: "empty" }, "No gaps found.")))))));
  }

  /* A line chart per channel, drawn as inline SVG; a hidden table carries the same numbers for
     screen readers. */
  function chart(title, series, channels, value, format) {
    const fmt = format || ((n) => String(n));
    const dates = [...new Set(series.map((d) => d.date))].sort();
    const width = 560, height = 220, left = 48, right = 24, top = 12, bottom = 28;
    const raw = Math.max(0, ...series.map(value));
    const counts = series.every((d) => Number.isInteger(value(d)));
    // Integer ticks for counts; for amounts, enough decimals that the five ticks differ.
    const max = counts ? Math.max(4, Math.ceil(raw / 4) * 4) : (raw > 0 ? raw : 1);
    const decimals = counts ? 0 : Math.max(0, Math.ceil(-Math.log10(max / 4)) + 1);
    const x = (i) => left + (dates.length < 2 ? 0 : (i * (width - left - right)) / (dates.length - 1));
    const y = (v) => top + (height - top - bottom) * (1 - v / max);
    const parts = [];
    for (let k = 0; k <= 4; k += 1) {
      const v = (max * k) / 4;
      parts.push(svg("line", { class: "grid", x1: left, x2: width - right, y1: y(v), y2: y(v) }));
      parts.push(svg("text", { x: left - 6, y: y(v) + 4, "text-anchor": "end" }, v.toFixed(decimals)));
    }
    const step = Math.max(1, Math.ceil(dates.length / 6));
    dates.forEach((date, i) => {
      if (i % step === 0 || i === dates.length - 1) {
        parts.push(svg("text", { x: x(i), y: height - 8, "text-anchor": "middle" }, date.slice(5)));
      }
    });
    parts.push(svg("line", { class: "axis", x1: left, x2: width - right, y1: y(0), y2: y(0) }));
    channels.forEach((channel, n) => {
      const byDate = new Map(series.filter((d) => d.channel === channel).map((d) => [d.date, value(d)]));
      const points = dates.map((date, i) => `${x(i).toFixed(1)},${y(byDate.get(date) || 0).toFixed(1)}`);
      parts.push(svg("polyline", { points: points.join(" "), fill: "none", stroke: COLORS[n % COLORS.length], "stroke-width": 2, "stroke-linejoin": "round" }));
      if (dates.length <= 31) {
        dates.forEach((date, i) => parts.push(svg("circle", { cx: x(i), cy: y(byDate.get(date) || 0), r: 2.5, fill: COLORS[n % COLORS.length] })));
      }
    });
    const id = `chart-${title.replace(/\W+/g, "-").toLowerCase()}`;
    const totals = channels.map((c) => [c, series.filter((d) => d.channel === c).reduce((sum, d) => sum + value(d), 0)]);
    return h("figure", { class: "panel chart", "aria-labelledby": id, style: "margin:0" },
      h("figcaption", { id }, h("h2", { style: "margin-top:0" }, title)),
      svg("svg", { viewBox: `0 0 ${width} ${height}`, role: "img", "aria-label": `${title}: ${totals.map(([c, t]) => `${c} ${fmt(t)} in total`).join(", ") || "no data"}` },
        ...parts),
      h("ul", { class: "legend" }, channels.map((c, n) => h("li", {}, h("i", { style: `background:${COLORS[n % COLORS.length]}` }), c))),
      h("div", { class: "visually-hidden" }, h("table", {},
        h("caption", {}, title),
        h("thead", {}, h("tr", {}, h("th", { scope: "col" }, "Date"), channels.map((c) => h("th", { scope: "col" }, c)))),
        h("tbody", {}, dates.map((date) => h("tr", {}, h("th", { scope: "row" }, date),
          channels.map((c) => {
            const found = series.find((d) => d.date === date && d.channel === c);
            return h("td", {}, fmt(found ? value(found) : 0));
          })))))));
  }

  // -- routing -------------------------------------------------------------------------------

  function route() {
    const path = window.location.pathname.replace(/\/+$/, "");
    const thread = path.match(/^\/console\/threads\/([^/]+)$/);
    if (thread) return threadPage(decodeURIComponent(thread[1]));
    if (path === "/console/knowledge") return knowledgePage();
    if (path === "/console/agents") return agentsPage();
    if (path === "/console/analytics") return analyticsPage();
    if (path === "/console" || path === "/console/inbox") return inboxPage();
    page("Not found", null, h("p", {}, "There is no such console page. ", h("a", { href: "/console" }, "Go to the inbox.")));
    return undefined;
  }

  route();
})();
