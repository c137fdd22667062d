/* supportbot widget: one script tag on any page of your site opens a chat panel.
 *
 *   <script src="https://support.example.com/widget.js" async
 *           data-identity="<signed identity, optional>" data-name="Ada Lovelace"></script>
 *
 * The panel is the /chat page in an iframe from the bot's own origin, so the visitor's session
 * cookie stays there (HttpOnly, SameSite=Lax: serve the bot on the same site as your pages).
 * API: Supportbot.open(), Supportbot.close(), Supportbot.toggle(),
 *      Supportbot.identify(identity, name) after your user signs in. The customer id and email
 *      travel inside the signed identity; nothing that selects a customer's data is sent unsigned. */
(function () {
  "use strict";
  if (window.Supportbot) { return; }
  var script = document.currentScript || document.querySelector("script[src*='widget.js']");
  var origin = new URL(script.src, location.href).origin;
  var identity = script.getAttribute("data-identity");
  var hash = "";
  if (identity) {
    var params = new URLSearchParams({ identity: identity });
    if (script.getAttribute("data-name")) { params.set("name", script.getAttribute("data-name")); }
    hash = "#" + params.toString();
  }

  var style = document.createElement("style");
  style.textContent = [
    ".sbw-launcher{position:fixed;right:18px;bottom:18px;z-index:2147483000;min-width:56px;height:56px;",
    "border-radius:28px;border:0;background:#2456d6;color:#fff;font:600 15px system-ui,sans-serif;",
    "padding:0 18px;box-shadow:0 4px 14px rgba(0,0,0,.25);cursor:pointer}",
    ".sbw-launcher:focus-visible{outline:3px solid #f0a500;outline-offset:3px}",
    ".sbw-panel{position:fixed;right:18px;bottom:86px;z-index:2147483000;width:380px;height:600px;",
    "max-height:calc(100vh - 110px);border-radius:12px;overflow:hidden;background:#fff;",
    "box-shadow:0 8px 30px rgba(0,0,0,.3)}",
    ".sbw-panel[hidden]{display:none}",
    ".sbw-panel iframe{border:0;width:100%;height:100%}",
    "@media (max-width:480px){.sbw-panel{right:0;bottom:0;width:100vw;height:100vh;max-height:none;",
    "border-radius:0}.sbw-open .sbw-launcher{bottom:auto;top:8px;right:8px;height:40px;min-width:40px}}"
  ].join("");
  document.head.appendChild(style);

  var launcher = document.createElement("button");
  launcher.type = "button";
  launcher.className = "sbw-launcher";
  launcher.textContent = "Chat with us";
  launcher.setAttribute("aria-expanded", "false");
  launcher.setAttribute("aria-controls", "supportbot-panel");

  var panel = document.createElement("div");
  panel.id = "supportbot-panel";
  panel.className = "sbw-panel";
  panel.setAttribute("role", "dialog");
  panel.setAttribute("aria-label", "Support chat");
  panel.hidden = true;
  var frame = null;

  function open() {
    if (!frame) {
      frame = document.createElement("iframe");
      frame.title = "Support chat";
      frame.src = origin + "/chat?embed=1" + hash;
      panel.appendChild(frame);
    }
    panel.hidden = false;
    document.documentElement.classList.add("sbw-open");
    launcher.setAttribute("aria-expanded", "true");
    launcher.textContent = "Close chat";
    frame.addEventListener("load", function () { frame.focus(); }, { once: true });
    frame.focus();
  }

  function close() {
    panel.hidden = true;
    document.documentElement.classList.remove("sbw-open");
    launcher.setAttribute("aria-expanded", "false");
    launcher.textContent = "Chat with us";
    launcher.focus();
  }

  function toggle() { if (panel.hidden) { open(); } else { close(); } }

  function identify(nextIdentity, name) {
    if (arguments.length > 2 && window.console) {
      console.warn("Supportbot.identify: a customer id is no longer passed here; sign it into the identity");
    }
    var message = { type: "supportbot:identify", identity: nextIdentity, name: name || null };
    var params = new URLSearchParams({ identity: nextIdentity });
    if (name) { params.set("name", name); }
    hash = "#" + params.toString();
    if (frame && frame.contentWindow) { frame.contentWindow.postMessage(message, origin); }
  }

  launcher.addEventListener("click", toggle);
  document.addEventListener("keydown", function (event) {
    if (event.key === "Escape" && !panel.hidden) { close(); }
  });

  function mount() {
    document.body.appendChild(panel);
    document.body.appendChild(launcher);
  }
  if (document.body) { mount(); } else { document.addEventListener("DOMContentLoaded", mount); }

  window.Supportbot = { open: open, close: close, toggle: toggle, identify: identify };
})();
