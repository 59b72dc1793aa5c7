// The kiosk's screen behaviour: physical buttons (server-sent events), visible focus,
// the idle countdown, the live camera preview with guidance, and an on-screen keyboard.
(function () {
  "use strict";
  const body = document.body;
  const csrf = document.querySelector('meta[name="csrf-token"]').content;
  // The daemon's per-boot token: /live and /api calls that change something carry it.
  const token = document.querySelector('meta[name="kiosk-token"]').content;
  const warning = document.getElementById("idle-warning");

  // --- focus: every touch target is reachable with ◀ ▶ and OK --------------------------
  function visible(el) {
    return el.offsetParent !== null || el.getClientRects().length > 0;
  }
  function targets() {
    const scope = warning.hidden ? document : warning;
    const list = Array.from(scope.querySelectorAll(
      'main a[href], main button:not([disabled]), main input:not([type="hidden"]), main select, ' +
      'main textarea, #help-button, .bar .lang button, #cancel-button, #idle-stay'));
    return list.filter((el) => visible(el) && !el.closest("[hidden]") && !el.hasAttribute("data-nofocus"));
  }
  function focusFirst() {
    const firstError = document.querySelector("main p.error[id^='error-']");
    const errorField = firstError && document.getElementById(firstError.id.slice(6));
    const preferred = errorField || document.querySelector("main [autofocus]")
      || document.querySelector("main .primary");
    const inMain = targets().filter((t) => t.closest("main"));
    const fallback = inMain[0] || document.getElementById("cancel-button") || targets()[0];
    const el = preferred && visible(preferred) ? preferred : fallback;
    // The screen opens at its top with its heading: the first focus never scrolls it (the
    // primary button sits in the actions bar kept in view, kiosk.css).
    if (el) el.focus({ focusVisible: true, preventScroll: true });
  }
  function move(step) {
    const list = targets();
    if (!list.length) return;
    let i = list.indexOf(document.activeElement);
    i = i < 0 ? (step > 0 ? 0 : list.length - 1) : (i + step + list.length) % list.length;
    list[i].focus({ focusVisible: true });
    list[i].dispatchEvent(new Event("kiosk-focus"));
  }
  function activate() {
    const el = document.activeElement;
    if (!el || el === body) { focusFirst(); return; }
    const typed = ["text", "tel", "email", "password", "search", "number"];
    if ((el.tagName === "INPUT" && typed.includes(el.type)) || el.tagName === "TEXTAREA") {
      if (el.form) el.form.requestSubmit();  // OK on a field sends what was typed
      return;
    }
    if (el.tagName === "SELECT") {  // OK steps through the choices, as a finger would pick
      el.selectedIndex = (el.selectedIndex + 1) % el.options.length;
      el.dispatchEvent(new Event("change", { bubbles: true }));
      return;
    }
    el.click();
  }
  function press(name) {
    resetIdle();
    if (body.dataset.buttonTest === "true") {  // technician's button test: show, do not act
      document.dispatchEvent(new CustomEvent("kiosk-button", { detail: name }));
      return;
    }
    if (name === "next") move(1);
    else if (name === "back") move(-1);
    else if (name === "ok") activate();
    else if (name === "help") window.location.href = body.dataset.help;
    else if (name === "cancel") {
      const c = document.getElementById("cancel-button");
      if (c) c.click(); else window.location.href = body.dataset.home;
    }
    document.dispatchEvent(new CustomEvent("kiosk-button", { detail: name }));
  }

  // --- physical buttons pushed by the daemon -------------------------------------------
  function listen() {
    if (!window.EventSource) return;
    const source = new EventSource("/live/events");
    source.addEventListener("button", (e) => press(JSON.parse(e.data).button));
    source.addEventListener("state", (e) => {
      const locked = JSON.parse(e.data).locked;
      // Citizen screens follow the lock (out of service / back); the technician's do not.
      if (body.dataset.locked !== "ignore" && String(locked) !== body.dataset.locked) {
        window.location.reload();
      }
    });
    source.addEventListener("open", () => { body.dataset.buttons = "connected"; });
  }

  // --- idle: a warning with a countdown, then everything is wiped ----------------------
  const idleS = parseFloat(body.dataset.idle || "90");
  const warnS = Math.min(parseFloat(body.dataset.warn || "20"), idleS);
  let lastActive = Date.now();
  function resetIdle() {
    lastActive = Date.now();
    if (!warning.hidden) { warning.hidden = true; focusFirst(); }
  }
  function tick() {
    const left = idleS - (Date.now() - lastActive) / 1000;
    if (left <= 0) {
      document.getElementById("timeout-form").submit();
      return;
    }
    if (left <= warnS) {
      document.getElementById("idle-count").textContent = String(Math.ceil(left));
      if (warning.hidden) {
        warning.hidden = false;
        document.getElementById("idle-stay").focus({ focusVisible: true });
      }
    }
    setTimeout(tick, 250);
  }
  // An untouched start screen has nothing to wipe: no countdown there.
  const idleFree = body.dataset.idleFree === "true";
  ["pointerdown", "keydown", "input", "touchstart"].forEach((t) =>
    document.addEventListener(t, resetIdle, { capture: true, passive: true }));
  document.getElementById("idle-stay").addEventListener("click", resetIdle);

  // --- live camera: preview frames and guidance from the daemon's own checks -----------
  function preview(img) {
    let alive = true;
    function next() {
      if (!alive) return;
      const fresh = new Image();
      fresh.onload = () => { img.src = fresh.src; setTimeout(next, 250); };
      fresh.onerror = () => setTimeout(next, 1000);
      fresh.src = img.dataset.src + "?t=" + Date.now();
    }
    next();
    window.addEventListener("pagehide", () => { alive = false; });
  }
  function poll(el) {
    const outline = document.getElementById("outline");
    let stopped = false;
    async function once() {
      if (stopped) return;
      let data = null;
      try {
        const r = await fetch(el.dataset.poll, {
          method: "POST", headers: { "X-CSRFToken": csrf, "Accept": "application/json" },
          credentials: "same-origin",
        });
        data = await r.json();
      } catch (e) {
        setTimeout(once, 1000);
        return;
      }
      if (data.next) { stopped = true; window.location.href = data.next; return; }
      if (data.message) el.textContent = data.message;
      el.className = "guidance " + (data.tone || "") + (data.seconds_left !== undefined ? " big" : "");
      const countdown = document.getElementById("countdown");
      if (countdown) {  // the liveness challenge's time, or the wait before the next try
        countdown.hidden = data.seconds_left === undefined;
        if (!countdown.hidden) {
          document.getElementById("countdown-n").textContent = String(Math.ceil(data.seconds_left));
        }
      }
      if (data.progress) resetIdle();
      const skip = document.getElementById("chip-skip");
      if (skip && data.skip !== undefined) skip.hidden = !data.skip;  // the chip step's way out
      if (outline) {
        outline.setAttribute("points", (data.quad || []).map((p) => p[0] * 1000 + "," + p[1] * 750).join(" "));
        outline.setAttribute("class", data.tone === "good" ? "" : "adjust");
      }
      if (data.version !== undefined && el.dataset.version !== String(data.version)) {
        window.location.reload();  // what the screen lists changed (certification requests)
        return;
      }
      if (data.pages !== undefined) {
        const counter = document.getElementById("page-count");
        if (counter && counter.textContent !== String(data.pages)) window.location.reload();
      }
      setTimeout(once, data.wait_ms || 400);
    }
    once();
    window.addEventListener("pagehide", () => { stopped = true; });
  }

  // --- on-screen keyboard (Chromium in kiosk mode has none) -----------------------------
  const TONES = { "sắc": "\u0301", "huyền": "\u0300", "hỏi": "\u0309", "ngã": "\u0303", "nặng": "\u0323" };
  const VOWELS = "aăâeêioôơuưyAĂÂEÊIOÔƠUƯY";
  function addTone(input, mark) {
    const v = input.value;
    const base = v.normalize("NFD").replace(/[\u0300\u0301\u0303\u0309\u0323]/g, "").normalize("NFC");
    let i = base.length - 1;
    while (i >= 0 && base[i] !== " " && VOWELS.indexOf(base[i]) < 0) i--;
    if (i < 0 || base[i] === " ") return;
    const word = v.slice(0, i).normalize("NFC");
    input.value = (word + (base[i] + mark).normalize("NFC") + v.slice(i + 1)).normalize("NFC");
  }
  function keyboard(input) {
    const rows = input.dataset.osk === "digits"
      ? ["1 2 3", "4 5 6", "7 8 9", "⌫ 0"]
      : ["1 2 3 4 5 6 7 8 9 0", "Q W E R T Y U I O P", "A S D F G H J K L Đ", "Z X C V B N M Ă Â Ê",
         "Ô Ơ Ư - / , . @", "sắc huyền hỏi ngã nặng", "␣ ⌫"];
    const pad = document.createElement("div");
    pad.className = "osk";
    pad.hidden = true;
    pad.setAttribute("aria-hidden", "true");
    // Shown at the bottom of the screen while its field has the focus; a tap on a key keeps it.
    // Hidden a moment after the field loses the focus, so that the tap which moved the focus
    // (on "Tìm kiếm", say) lands before the layout changes under the finger.
    let hiding = null;
    // Opened by a touch on the field or when the buttons bring the focus to it; not by the
    // page's own first focus, so a screen (and its messages) is seen whole first.
    function open() {
      clearTimeout(hiding);
      pad.hidden = false;
      body.classList.add("osk-open");
      input.scrollIntoView({ block: "nearest" });
    }
    input.addEventListener("pointerdown", open);
    input.addEventListener("kiosk-focus", open);
    input.addEventListener("focus", () => { if (!pad.hidden) clearTimeout(hiding); });
    input.addEventListener("blur", () => {
      hiding = setTimeout(() => { pad.hidden = true; body.classList.remove("osk-open"); }, 400);
    });
    pad.addEventListener("pointerdown", (e) => e.preventDefault());
    rows.forEach((row) => {
      const line = document.createElement("div");
      line.className = "row";
      row.split(" ").forEach((k) => {
        const b = document.createElement("button");
        b.type = "button";
        b.tabIndex = -1;
        b.dataset.nofocus = "";
        b.textContent = k;
        if (k === "␣") b.className = "wide";
        b.addEventListener("click", () => {
          if (k === "⌫") input.value = input.value.slice(0, -1);
          else if (k === "␣") input.value += " ";
          else if (TONES[k]) addTone(input, TONES[k]);
          else {
            const lower = input.dataset.case !== "upper" && input.value.length > 0 && input.value.slice(-1) !== " ";
            input.value += lower && /\p{L}/u.test(k) ? k.toLowerCase() : k;
          }
          input.dispatchEvent(new Event("input", { bubbles: true }));
          input.focus();
        });
        line.appendChild(b);
      });
      pad.appendChild(line);
    });
    document.body.appendChild(pad);
  }

  document.querySelectorAll("[data-osk]").forEach(keyboard);
  document.querySelectorAll("img[data-src]").forEach(preview);
  document.querySelectorAll("[data-poll]").forEach(poll);
  document.querySelectorAll("[data-auto-submit]").forEach((form) =>
    setTimeout(() => form.requestSubmit(), parseInt(form.dataset.autoSubmit, 10)));
  // --- heartbeat for the kiosk browser's watchdog ---------------------------------------
  function beat() {
    fetch("/live/heartbeat", {
      method: "POST", credentials: "same-origin",
      headers: { "X-Kiosk-Token": token, "Content-Type": "application/json" },
      body: JSON.stringify({ screen: window.location.pathname }),
    }).catch(() => {});
  }
  beat();
  setInterval(beat, 10000);

  listen();
  focusFirst();
  // The browser's own autofocus may scroll the focused button into view before this script
  // runs or at the first frame after it: the screen still opens at its top (its heading).
  const atTop = () => { document.getElementById("main").scrollTop = 0; window.scrollTo(0, 0); };
  atTop();
  requestAnimationFrame(atTop);
  if (!idleFree) setTimeout(tick, 250);
})();
