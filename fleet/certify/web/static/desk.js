// The certification desk: keyboard first (A approve, R refuse + digit, S see staff, J/K next/
// previous, +/- zoom, ? help), zoomable pages, and a queue that refreshes in place.
"use strict";

(function () {
  function typing(ev) {
    const t = ev.target;
    return t && (t.tagName === "INPUT" || t.tagName === "TEXTAREA" || t.tagName === "SELECT");
  }

  function go(url) { if (url) { window.location.assign(url); } }

  // -- the request screen ------------------------------------------------------------------
  function requestScreen(root) {
    const refuse = document.getElementById("refuse-panel");
    const staff = document.getElementById("staff-panel");
    const help = document.getElementById("help");
    const other = document.getElementById("other-label");
    const otherText = document.getElementById("reason-text");
    let zoom = 1;

    function closeAll() {
      refuse.hidden = true; staff.hidden = true;
      if (help.open) { help.close(); }
    }
    function setZoom(z) {
      zoom = Math.min(4, Math.max(0.5, z));
      document.querySelectorAll("#pages figure").forEach(function (f) {
        f.dataset.zoom = String(zoom);
        f.querySelector("img").style.width = (zoom * 100) + "%";
      });
    }
    function pickReason(input) {
      input.checked = true;
      if (input.value === "other") {
        other.hidden = false; otherText.required = true; otherText.focus();
      } else {
        refuse.submit();
      }
    }
    document.getElementById("refuse").addEventListener("click", function () {
      closeAll(); refuse.hidden = false;
    });
    document.getElementById("see-staff").addEventListener("click", function () {
      closeAll(); staff.hidden = false; document.getElementById("staff-note").focus();
    });
    document.getElementById("help-button").addEventListener("click", function () { help.showModal(); });
    document.querySelectorAll(".cancel").forEach(function (b) { b.addEventListener("click", closeAll); });
    refuse.querySelectorAll("input[name=reason]").forEach(function (r) {
      r.addEventListener("change", function () {
        other.hidden = r.value !== "other"; otherText.required = r.value === "other";
      });
    });
    document.querySelectorAll("#pages img").forEach(function (img) {
      img.addEventListener("click", function (ev) { setZoom(ev.shiftKey ? zoom / 1.5 : zoom * 1.5); });
    });
    // Buttons once: a second A while the first approval is on its way does nothing.
    document.getElementById("approve-form").addEventListener("submit", function (ev) {
      const b = document.getElementById("approve");
      if (b.disabled) { ev.preventDefault(); } else { b.disabled = true; }
    });

    document.addEventListener("keydown", function (ev) {
      if (ev.ctrlKey || ev.metaKey || ev.altKey) { return; }
      if (ev.key === "Escape") { closeAll(); return; }
      if (typing(ev)) { return; }
      const k = ev.key;
      if (!refuse.hidden && /^[1-9]$/.test(k)) {
        const input = refuse.querySelector('input[data-digit="' + k + '"]');
        if (input) { ev.preventDefault(); pickReason(input); }
        return;
      }
      switch (k.toLowerCase()) {
        case "a": ev.preventDefault(); document.getElementById("approve").click(); break;
        case "r": ev.preventDefault(); document.getElementById("refuse").click(); break;
        case "s": ev.preventDefault(); document.getElementById("see-staff").click(); break;
        case "j": go(root.dataset.next); break;
        case "k": go(root.dataset.previous); break;
        case "+": case "=": setZoom(zoom * 1.5); break;
        case "-": setZoom(zoom / 1.5); break;
        case "?": help.showModal(); break;
        case "escape": closeAll(); break;
        default: return;
      }
    });
  }

  // -- the queue ---------------------------------------------------------------------------
  function queuePage(box) {
    let selected = null;  // the request id the officer is on: kept across refreshes
    function rows() { return Array.from(box.querySelectorAll("tbody tr[data-id]")); }
    function select(row) {
      rows().forEach(function (r) { r.classList.remove("selected"); });
      if (row) { row.classList.add("selected"); selected = row.dataset.id; row.focus({preventScroll: true}); }
    }
    function move(step) {
      const all = rows();
      if (!all.length) { return; }
      const i = all.findIndex(function (r) { return r.dataset.id === selected; });
      const next = all[Math.min(all.length - 1, Math.max(0, i < 0 ? 0 : i + step))];
      select(next);
      next.scrollIntoView({block: "nearest"});
    }
    async function refresh() {
      try {
        const res = await fetch(box.dataset.rows, {headers: {"X-Requested-With": "fetch"}, credentials: "same-origin"});
        if (res.status === 401) { window.location.reload(); return; }
        if (!res.ok) { return; }
        const y = window.scrollY;
        box.innerHTML = await res.text();
        const row = selected && box.querySelector('tr[data-id="' + CSS.escape(selected) + '"]');
        if (row) { row.classList.add("selected"); }
        window.scrollTo(0, y);
      } catch (e) { /* the next refresh tries again */ }
    }
    const every = Number(box.dataset.refresh || "15");
    window.setInterval(refresh, every * 1000);
    box.addEventListener("click", function (ev) {
      const row = ev.target.closest("tr[data-id]");
      if (row && ev.target.tagName !== "A") { select(row); }
    });
    document.addEventListener("keydown", function (ev) {
      if (typing(ev) || ev.ctrlKey || ev.metaKey || ev.altKey) { return; }
      if (ev.key === "j" || ev.key === "ArrowDown") { ev.preventDefault(); move(1); }
      else if (ev.key === "k" || ev.key === "ArrowUp") { ev.preventDefault(); move(-1); }
      else if (ev.key === "Enter" && selected) {
        const a = box.querySelector('tr[data-id="' + CSS.escape(selected) + '"] a.open');
        if (a) { go(a.href); }
      }
    });
    box.refreshNow = refresh;
  }

  document.addEventListener("DOMContentLoaded", function () {
    const req = document.getElementById("request");
    if (req) { requestScreen(req); }
    // The next request's pages into the HTTP cache once this one is shown (the <link
    // rel=prefetch> alone is skipped by some browsers and modes).
    window.addEventListener("load", function () {
      document.querySelectorAll('link[rel="prefetch"][as="image"]').forEach(function (l) {
        const img = new Image();
        img.decoding = "async";
        img.src = l.href;
      });
    });
    const queue = document.getElementById("queue");
    if (queue) { queuePage(queue); }
  });
})();
