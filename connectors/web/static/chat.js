/* supportbot chat: the /chat page and the panel /widget.js opens (same page, in an iframe).
 * No build step, no dependencies. Text is always inserted as text, never as HTML.
 * Host-page API: window.SupportbotChat.identify({identity, name}) — or, from the
 * embedding page, Supportbot.identify(...) which posts the same message into this frame. */
(function () {
  "use strict";

  var STORE_KEY = "supportbot.conversation";
  var el = function (id) { return document.getElementById(id); };
  var log = el("sb-log"), input = el("sb-input"), form = el("sb-form"), send = el("sb-send");
  var stateBox = el("sb-state"), empty = el("sb-empty"), errorBox = el("sb-error");
  var fileInput = el("sb-file"), filesBox = el("sb-files"), who = el("sb-who");
  var historyBox = el("sb-history"), historyList = el("sb-history-list");
  var historyToggle = el("sb-history-toggle");

  var current = null;        // the open conversation object
  var pendingFiles = [];     // File objects chosen but not sent yet
  var busy = false;
  var watching = null;       // the live stream of a conversation a person may hold
  var lastCursor = "";       // where that stream resumes: the last person message shown
  var identity = readHashIdentity();
  var ready = startSession(identity).then(restore);

  function readHashIdentity() {
    var params = new URLSearchParams(location.hash.replace(/^#/, ""));
    if (!params.get("identity")) { return null; }
    var found = { identity: params.get("identity"), name: params.get("name") };
    // Keep the signed token out of the address bar (and of copied links).
    history.replaceState(null, "", location.pathname + location.search);
    return found;
  }

  function api(path, options) {
    options = options || {};
    options.credentials = "same-origin";
    options.headers = Object.assign({ "Accept": "application/json" }, options.headers || {});
    return fetch(path, options).then(function (response) {
      if (response.status === 401 && !options._retried) {
        // The session cookie expired: make a new one and try once more.
        options._retried = true;
        return startSession(identity).then(function () { return api(path, options); });
      }
      if (!response.ok) {
        return response.json().catch(function () { return {}; }).then(function (body) {
          var message = (body.error && body.error.message) || ("HTTP " + response.status);
          var error = new Error(message);
          error.status = response.status;
          throw error;
        });
      }
      return response.json();
    });
  }

  function startSession(who_) {
    // Only the signed identity and a display name: the session refuses any other field.
    var body = who_ ? { identity: who_.identity, name: who_.name || null } : {};
    return fetch("/web/session", {
      method: "POST", credentials: "same-origin",
      headers: { "Content-Type": "application/json", "Accept": "application/json" },
      body: JSON.stringify(body)
    }).then(function (response) {
      return response.json().then(function (body) {
        if (!response.ok) { throw new Error((body.error && body.error.message) || "sign-in refused"); }
        showWho(body);
        return body;
      });
    });
  }

  function showWho(session) {
    who.textContent = session.signed_in
      ? "Signed in" + (session.display_name ? " as " + session.display_name : "")
      : "Chatting as a guest";
    document.documentElement.setAttribute("data-smith", session.smith_id);
  }

  function identify(next) {
    identity = next;
    ready = startSession(next).then(function (session) {
      return loadHistory().then(function () { return session; });
    }).catch(showError);
    return ready;
  }

  function restore() {
    return loadHistory().then(function (list) {
      var wanted = sessionStorage.getItem(STORE_KEY) || localStorage.getItem(STORE_KEY);
      var pick = list.filter(function (c) { return c.id === wanted; })[0] || list[0];
      if (pick) { return openConversation(pick); }
    }).catch(showError);
  }

  function loadHistory() {
    return api("/v1/conversations?limit=20").then(function (page) {
      historyList.textContent = "";
      page.data.forEach(function (c) {
        var li = document.createElement("li");
        var button = document.createElement("button");
        button.type = "button";
        button.textContent = c.title || "Untitled conversation";
        button.setAttribute("data-conversation", c.id);
        if (current && c.id === current.id) { button.setAttribute("aria-current", "true"); }
        button.addEventListener("click", function () {
          openConversation(c);
          toggleHistory(false);
          input.focus();
        });
        li.appendChild(button);
        historyList.appendChild(li);
      });
      return page.data;
    });
  }

  function remember(conversation) {
    current = conversation;
    localStorage.setItem(STORE_KEY, conversation ? conversation.id : "");
    document.documentElement.setAttribute("data-conversation", conversation ? conversation.id : "");
  }

  function openConversation(conversation) {
    stopWatching();
    remember(conversation);
    log.textContent = "";
    lastCursor = "";
    // The latest 100 messages (newest first from the API), shown oldest first.
    return api("/v1/conversations/" + encodeURIComponent(conversation.id) + "/items?limit=100&order=desc")
      .then(function (page) {
        page.data.slice().reverse().forEach(function (item) {
          var text = "", files = [], annotations = [];
          (item.content || []).forEach(function (part) {
            if (part.type === "input_text" || part.type === "output_text") {
              text += part.text;
              annotations = annotations.concat(part.annotations || []);
            } else if (part.filename) { files.push(part.filename); }
          });
          if (item.author && item.author.kind === "person") {
            addPerson(item, text);
            return;
          }
          var bubble = addMessage(item.role, text, files);
          if (annotations.length) { showCitations(bubble, annotations); }
          if (item.role === "assistant" && /\.o$/.test(item.id || "")) {
            addRating(bubble, item.id.replace(/\.o$/, ""));
          }
        });
        return api("/v1/conversations/" + encodeURIComponent(conversation.id));
      })
      .then(function (fresh) { remember(fresh); showState(fresh.state, fresh.control); watch(); });
  }

  function newConversation() {
    stopWatching();
    remember(null);
    log.textContent = "";
    showState("open");
    empty.hidden = false;
    input.focus();
  }

  function addMessage(role, text, files) {
    empty.hidden = true;
    var li = document.createElement("li");
    li.className = "sb-msg";
    li.setAttribute("data-role", role);
    var label = document.createElement("span");
    label.className = "sr-only";
    label.textContent = role === "user" ? "You said: " : (role === "assistant" ? "Support said: " : "");
    li.appendChild(label);
    var body = document.createElement("span");
    body.className = "sb-text";
    renderText(body, text || "");
    li.appendChild(body);
    (files || []).forEach(function (name) {
      var span = document.createElement("span");
      span.className = "sb-attachment";
      span.textContent = "Attached: " + name;
      li.appendChild(span);
    });
    log.appendChild(li);
    li.scrollIntoView({ block: "end" });
    return li;
  }

  // A person's message (the operator API): shown under their name, once however it arrives.
  function addPerson(item, text) {
    if (item.cursor) { lastCursor = item.cursor; }
    if (log.querySelector('[data-item="' + item.id + '"]')) { return null; }
    var name = (item.author && item.author.name) || "Support";
    var li = addMessage("person", text, []);
    li.setAttribute("data-item", item.id);
    li.querySelector(".sr-only").textContent = name + " from our team said: ";
    var by = document.createElement("span");
    by.className = "sb-author";
    by.setAttribute("aria-hidden", "true");
    by.textContent = name;
    li.insertBefore(by, li.querySelector(".sb-text"));
    return li;
  }

  // While a person may hold the conversation, follow it live: their messages appear as they
  // are sent, and the banner follows who holds it. The stream ends by itself now and then;
  // it is opened again from the last message shown, until the bot has the conversation back.
  function watch() {
    if (!current || watching || !personHolds()) { return; }
    var conversation = current;
    var controller = new AbortController();
    watching = controller;
    var url = "/v1/conversations/" + encodeURIComponent(conversation.id) + "/events" +
      (lastCursor ? "?after=" + encodeURIComponent(lastCursor) : "");
    fetch(url, { credentials: "same-origin", signal: controller.signal,
                 headers: { "Accept": "text/event-stream" } })
      .then(function (response) {
        if (!response.ok || !response.body) { throw new Error("HTTP " + response.status); }
        var reader = response.body.getReader(), decoder = new TextDecoder(), buffer = "";
        function pump() {
          return reader.read().then(function (chunk) {
            if (chunk.done) { return; }
            buffer += decoder.decode(chunk.value, { stream: true });
            var frames = buffer.split("\n\n");
            buffer = frames.pop();
            frames.forEach(function (frame) { liveFrame(frame, conversation); });
            return pump();
          });
        }
        return pump();
      })
      .catch(function () { return new Promise(function (r) { setTimeout(r, 2000); }); })
      .then(function () {
        if (watching !== controller) { return; }
        watching = null;
        if (current && current.id === conversation.id) { watch(); }
      });
  }

  // While the bot holds the conversation no stream is open; a short JSON look every
  // CHECK_MS still notices a person who writes first (the console can answer any thread) or
  // closes it, and opens the live stream from there.
  var CHECK_MS = 10000;
  window.setInterval(function () {
    if (!current || watching || busy || document.hidden || personHolds()) { return; }
    var conversation = current;
    api("/v1/conversations/" + encodeURIComponent(conversation.id) + "/events" +
        (lastCursor ? "?after=" + encodeURIComponent(lastCursor) : ""))
      .then(function (seen) {
        if (!current || current.id !== conversation.id) { return; }
        (seen.data || []).forEach(function (item) {
          var text = (item.content || []).map(function (p) { return p.text || ""; }).join("");
          var li = addPerson(item, text);
          if (li) { li.setAttribute("data-live", "true"); }
        });
        if (seen.state !== current.state || seen.control !== current.control) {
          current.state = seen.state;
          current.control = seen.control;
          showState(seen.state, seen.control);
        }
        watch();
      })
      .catch(function () { /* the next look tries again */ });
  }, CHECK_MS);

  function stopWatching() {
    if (watching) { var w = watching; watching = null; w.abort(); }
  }

  function personHolds() {
    return !!current && (current.control === "human" || current.state === "escalated");
  }

  function liveFrame(frame, conversation) {
    var name = "message", data = "";
    frame.split("\n").forEach(function (line) {
      if (line.indexOf("event:") === 0) { name = line.slice(6).trim(); }
      else if (line.indexOf("data:") === 0) { data += line.slice(5).trim(); }
    });
    if (!data || !current || current.id !== conversation.id) { return; }
    var payload = JSON.parse(data);
    if (name === "person.message") {
      var text = (payload.content || []).map(function (p) { return p.text || ""; }).join("");
      var li = addPerson(payload, text);
      if (li) { li.setAttribute("data-live", "true"); }
    } else if (name === "thread.updated") {
      current.state = payload.state;
      current.control = payload.control;
      showState(payload.state, payload.control);
      if (!personHolds()) { stopWatching(); }
    }
  }

  // Render the answer's light Markdown (**bold**) as DOM nodes, never as HTML. The raw text
  // is re-rendered whole on each delta, so a marker split across deltas still pairs up.
  function renderText(target, raw) {
    target.setAttribute("data-raw", raw);
    target.textContent = "";
    raw.split(/(\*\*[^*]+\*\*)/).forEach(function (piece) {
      if (/^\*\*[^*]+\*\*$/.test(piece)) {
        var strong = document.createElement("strong");
        strong.textContent = piece.slice(2, -2);
        target.appendChild(strong);
      } else if (piece) {
        target.appendChild(document.createTextNode(piece));
      }
    });
  }

  function showCitations(bubble, citations) {
    if (!citations || !citations.length) { return; }
    // The answer names its source in a last "Source: …" line for channels without a list of
    // sources; here the list below says it, so the line would say it twice.
    var text = bubble.querySelector(".sb-text");
    if (text) {
      var raw = text.getAttribute("data-raw") || "";
      var trimmed = raw.replace(/\s*\n\s*Sources?: [^\n]*\s*$/, "");
      if (trimmed !== raw && trimmed.trim()) { renderText(text, trimmed); }
    }
    if (bubble.querySelector(".sb-citations")) { return; }
    var box = document.createElement("div");
    box.className = "sb-citations";
    box.appendChild(document.createTextNode("Sources:"));
    var list = document.createElement("ol");
    citations.forEach(function (c) {
      var li = document.createElement("li");
      var a = document.createElement("a");
      a.className = "sb-citation";
      a.textContent = c.title || c.source || "source";
      if (c.url) {
        a.href = c.url; a.target = "_blank"; a.rel = "noopener noreferrer";
      } else {
        // A bundled document has no address of its own: the link reveals the passage.
        a.href = "#"; a.setAttribute("role", "button"); a.setAttribute("aria-expanded", "false");
        var snippet = document.createElement("p");
        snippet.hidden = true; snippet.textContent = (c.snippet || "") + (c.source ? " (" + c.source + ")" : "");
        a.addEventListener("click", function (event) {
          event.preventDefault();
          snippet.hidden = !snippet.hidden;
          a.setAttribute("aria-expanded", String(!snippet.hidden));
        });
        li.appendChild(a); li.appendChild(snippet); list.appendChild(li);
        return;
      }
      li.appendChild(a);
      list.appendChild(li);
    });
    box.appendChild(list);
    bubble.appendChild(box);
  }

  // Thumbs up / down (and, after a thumbs down, an optional comment) on one answer: the
  // customer's satisfaction, stored with the run (POST /v1/conversations/{id}/feedback).
  function addRating(bubble, runId) {
    if (!current || bubble.querySelector(".sb-rating")) { return; }
    var conversationId = current.id;
    var box = document.createElement("div");
    box.className = "sb-rating";
    box.setAttribute("role", "group");
    box.setAttribute("aria-label", "Was this answer helpful?");
    var question = document.createElement("span");
    question.textContent = "Helpful?";
    question.setAttribute("aria-hidden", "true");
    box.appendChild(question);
    var thanks = document.createElement("span");
    thanks.className = "sb-rating-thanks";
    thanks.setAttribute("role", "status");
    var buttons = [["up", "Helpful"], ["down", "Not helpful"]].map(function (spec) {
      var button = document.createElement("button");
      button.type = "button";
      button.className = "sb-thumb";
      button.appendChild(thumbIcon(spec[0] === "down"));
      button.setAttribute("aria-label", spec[1]);
      button.setAttribute("aria-pressed", "false");
      button.setAttribute("data-rating", spec[0]);
      button.addEventListener("click", function () { rate(spec[0], null); });
      box.appendChild(button);
      return button;
    });
    box.appendChild(thanks);
    bubble.appendChild(box);

    function rate(rating, comment) {
      return api("/v1/conversations/" + encodeURIComponent(conversationId) + "/feedback", {
        method: "POST", headers: { "Content-Type": "application/json" },
        body: JSON.stringify({ run_id: runId, rating: rating, comment: comment })
      }).then(function () {
        buttons.forEach(function (b) {
          b.setAttribute("aria-pressed", String(b.getAttribute("data-rating") === rating));
        });
        thanks.textContent = "Thanks for your feedback.";
        if (rating === "down" && comment === null) { askWhy(); }
      }).catch(function (error) { thanks.textContent = "Could not send: " + error.message; });
    }

    function askWhy() {
      if (box.querySelector(".sb-rating-why")) { return; }
      var why = document.createElement("form");
      why.className = "sb-rating-why";
      var id = "sb-why-" + runId;
      var label = document.createElement("label");
      label.setAttribute("for", id);
      label.textContent = "What was missing? (optional)";
      var field = document.createElement("input");
      field.id = id; field.maxLength = 2000;
      var submitWhy = document.createElement("button");
      submitWhy.type = "submit"; submitWhy.className = "sb-button"; submitWhy.textContent = "Send";
      why.appendChild(label); why.appendChild(field); why.appendChild(submitWhy);
      why.addEventListener("submit", function (event) {
        event.preventDefault();
        if (!field.value.trim()) { return; }
        rate("down", field.value.trim()).then(function () { why.remove(); });
      });
      box.appendChild(why);
      field.focus();
    }
  }

  // A thumb drawn as SVG (an emoji needs a font the page cannot count on); down is up, flipped.
  function thumbIcon(down) {
    var ns = "http://www.w3.org/2000/svg";
    var icon = document.createElementNS(ns, "svg");
    icon.setAttribute("viewBox", "0 0 24 24");
    icon.setAttribute("width", "18"); icon.setAttribute("height", "18");
    icon.setAttribute("aria-hidden", "true"); icon.setAttribute("focusable", "false");
    var path = document.createElementNS(ns, "path");
    path.setAttribute("d", "M7 10v11H3V10h4zm2 11h8.3a2 2 0 0 0 2-1.6l1.4-7A2 2 0 0 0 18.7 10H14l.9-4.3" +
                           "a1.6 1.6 0 0 0-3-1.1L9 10v11z");
    path.setAttribute("fill", "none"); path.setAttribute("stroke", "currentColor");
    path.setAttribute("stroke-width", "1.8"); path.setAttribute("stroke-linejoin", "round");
    if (down) { path.setAttribute("transform", "rotate(180 12 12)"); }
    icon.appendChild(path);
    return icon;
  }

  function showState(state, control) {
    document.documentElement.setAttribute("data-state", state || "open");
    document.documentElement.setAttribute("data-control", control || "");
    if (state === "escalated" || (state !== "closed" && control === "human")) {
      stateBox.hidden = false;
      stateBox.setAttribute("data-state", "escalated");
      stateBox.textContent = (state === "escalated" ? "Escalated: a" : "A") +
        " person from our team has this conversation and will reply here.";
    } else if (state === "closed") {
      stateBox.hidden = false;
      stateBox.setAttribute("data-state", "closed");
      stateBox.textContent = "This conversation is closed. Write again to reopen it, or start a new conversation.";
    } else {
      stateBox.hidden = true;
      stateBox.removeAttribute("data-state");
      stateBox.textContent = "";
    }
  }

  function showError(error) {
    errorBox.hidden = !error;
    errorBox.textContent = error ? (error.message || String(error)) : "";
  }

  function setBusy(value) {
    busy = value;
    send.disabled = value;
    form.setAttribute("aria-busy", String(value));
  }

  function uploadFiles() {
    return Promise.all(pendingFiles.map(function (file) {
      var data = new FormData();
      data.append("file", file, file.name);
      return api("/v1/files", { method: "POST", body: data });
    }));
  }

  function ensureConversation() {
    if (current) { return Promise.resolve(current); }
    return api("/v1/conversations", {
      method: "POST", headers: { "Content-Type": "application/json" }, body: "{}"
    }).then(function (conversation) { remember(conversation); return conversation; });
  }

  function submit(event) {
    if (event) { event.preventDefault(); }
    var text = input.value.trim();
    if (busy || (!text && !pendingFiles.length)) { return; }
    showError(null);
    setBusy(true);
    var names = pendingFiles.map(function (f) { return f.name; });
    var bubble = addMessage("user", text, names);
    input.value = "";
    autosize();
    var answer = null;
    ready.then(ensureConversation).then(function (conversation) {
      return uploadFiles().then(function (uploaded) {
        pendingFiles = []; renderFiles();
        answer = addMessage("assistant", "", []);
        answer.setAttribute("aria-busy", "true");
        return stream(conversation, text, uploaded.map(function (f) { return f.id; }), answer);
      });
    }).catch(function (error) {
      if (answer && !answer.querySelector(".sb-text").textContent) { answer.remove(); }
      bubble.setAttribute("data-failed", "true");
      showError(error);
    }).then(function () {
      if (answer) { answer.removeAttribute("aria-busy"); }
      setBusy(false);
      loadHistory().catch(function () {});
      input.focus();
    });
  }

  function stream(conversation, text, fileIds, bubble) {
    var target = bubble.querySelector(".sb-text");
    return fetch("/v1/conversations/" + encodeURIComponent(conversation.id) + "/messages", {
      method: "POST", credentials: "same-origin",
      headers: { "Content-Type": "application/json", "Accept": "text/event-stream" },
      body: JSON.stringify({ content: text, attachments: fileIds,
                             client_message_id: String(Date.now()) + Math.random().toString(16).slice(2) })
    }).then(function (response) {
      if (!response.ok || !response.body) {
        return response.json().catch(function () { return {}; }).then(function (body) {
          throw new Error((body.error && body.error.message) || ("HTTP " + response.status));
        });
      }
      var reader = response.body.getReader();
      var decoder = new TextDecoder();
      var buffer = "";
      function pump() {
        return reader.read().then(function (chunk) {
          if (chunk.done) { return; }
          buffer += decoder.decode(chunk.value, { stream: true });
          var frames = buffer.split("\n\n");
          buffer = frames.pop();
          frames.forEach(function (frame) { handleFrame(frame, target, bubble); });
          return pump();
        });
      }
      return pump();
    });
  }

  function handleFrame(frame, target, bubble) {
    var name = "message", data = "";
    frame.split("\n").forEach(function (line) {
      if (line.indexOf("event:") === 0) { name = line.slice(6).trim(); }
      else if (line.indexOf("data:") === 0) { data += line.slice(5).trim(); }
    });
    if (!data) { return; }
    var payload = JSON.parse(data);
    if (name === "message.delta") {
      renderText(target, (target.getAttribute("data-raw") || "") + (payload.delta || ""));
      bubble.setAttribute("data-deltas", String(Number(bubble.getAttribute("data-deltas") || 0) + 1));
      bubble.scrollIntoView({ block: "end" });
    } else if (name === "message.reset") {
      // The answer starts over (a fallback model replaces one that failed mid-answer): the
      // text so far is withdrawn, what follows replaces it.
      renderText(target, "");
      bubble.setAttribute("data-resets", String(Number(bubble.getAttribute("data-resets") || 0) + 1));
    } else if (name === "tool.executing") {
      bubble.setAttribute("data-tool", payload.name || "tool");
    } else if (name === "run.completed" || name === "run.failed") {
      if (!target.textContent && payload.output_text) { renderText(target, payload.output_text); }
      if (name === "run.failed" && !target.textContent) {
        renderText(target, "Sorry, something went wrong. Your message is kept and we will answer it.");
      }
      bubble.setAttribute("data-run", payload.run_id || "");
      showCitations(bubble, payload.citations);
      if (name === "run.completed" && payload.run_id && target.textContent) {
        addRating(bubble, payload.run_id);
      }
      if (payload.conversation) {
        showState(payload.conversation.state, payload.conversation.control);
        if (current) {
          current.state = payload.conversation.state;
          current.control = payload.conversation.control;
          current.title = payload.conversation.title;
          watch();
        }
      }
      bubble.scrollIntoView({ block: "end" });
    } else if (name === "run.skipped") {
      bubble.setAttribute("data-role", "note");
      renderText(target, "Your message was passed to the person handling this conversation.");
      if (current) { current.control = "human"; }
      showState(current ? current.state : "escalated", "human");
      watch();
    }
  }

  function renderFiles() {
    filesBox.textContent = "";
    pendingFiles.forEach(function (file, index) {
      var chip = document.createElement("span");
      chip.textContent = file.name;
      var remove = document.createElement("button");
      remove.type = "button";
      remove.textContent = "×";
      remove.setAttribute("aria-label", "Remove " + file.name);
      remove.addEventListener("click", function () {
        pendingFiles.splice(index, 1); renderFiles(); input.focus();
      });
      chip.appendChild(remove);
      filesBox.appendChild(chip);
    });
  }

  function autosize() {
    input.style.height = "auto";
    input.style.height = Math.min(input.scrollHeight, 160) + "px";
  }

  function toggleHistory(open) {
    var show = typeof open === "boolean" ? open : historyBox.hidden;
    historyBox.hidden = !show;
    historyToggle.setAttribute("aria-expanded", String(show));
    if (show) { loadHistory().catch(showError); }
  }

  form.addEventListener("submit", submit);
  input.addEventListener("keydown", function (event) {
    if (event.key === "Enter" && !event.shiftKey && !event.isComposing) { submit(event); }
  });
  input.addEventListener("input", autosize);
  fileInput.addEventListener("change", function () {
    Array.prototype.forEach.call(fileInput.files, function (file) { pendingFiles.push(file); });
    fileInput.value = "";
    renderFiles();
  });
  el("sb-new").addEventListener("click", newConversation);
  historyToggle.addEventListener("click", function () { toggleHistory(); });
  document.addEventListener("keydown", function (event) {
    if (event.key === "Escape" && !historyBox.hidden) { toggleHistory(false); historyToggle.focus(); }
  });
  window.addEventListener("message", function (event) {
    // Only the page that embeds this frame may pass an identity (it is signed anyway).
    if (event.source !== window.parent || !event.data || event.data.type !== "supportbot:identify") { return; }
    identify({ identity: event.data.identity, name: event.data.name });
  });

  window.SupportbotChat = {
    identify: identify,
    ready: function () { return ready; },
    send: function (text) { input.value = text; submit(); },
    newConversation: newConversation
  };
})();
