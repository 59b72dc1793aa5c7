// The kiosk's screen behaviour: physical buttons (server-sent events), visible focus,
// the idle countdown, the cancel confirmation, the live camera preview with guidance; the
// on-screen keyboard is osk.js (window.KioskOsk), which the buttons drive while it is open.
(function () {
  "use strict";
  const body = document.body;
  const csrf = document.querySelector('meta[name="csrf-token"]').content;
  // The daemon's per-boot token: /live and /api calls that change something carry it.
  const token = document.querySelector('meta[name="kiosk-token"]').content;
  const warning = document.getElementById("idle-warning");
  const confirmBox = document.getElementById("cancel-confirm");
  const osk = window.KioskOsk;

  // --- focus: every touch target is reachable with ◀ ▶ and OK --------------------------
  function visible(el) {
    return el.offsetParent !== null || el.getClientRects().length > 0;
  }
  function targets() {
    const scope = !warning.hidden ? warning : (!confirmBox.hidden ? confirmBox : document);
    const list = Array.from(scope.querySelectorAll(
      'main a[href], main button:not([disabled]), main input:not([type="hidden"]), main select, ' +
      'main textarea, #say-again, #help-button, .bar .lang button, #cancel-button, #idle-stay, ' +
      '#cancel-no, #cancel-yes'));
    return list.filter((el) => visible(el) && !el.closest("[hidden]") && !el.hasAttribute("data-nofocus"));
  }
  // The default focus: the field with an error, the screen's autofocus or primary action; on a
  // screen without one (the camera screens) "Nghe lại" (#say-again), else Help. Never Cancel:
  // OK on the default focus must never wipe the flow. A primary marked data-staff-only (the
  // staff's "Confirm identity" on the citizen's waiting screen) is never the citizen's default.
  function focusFirst() {
    const firstError = document.querySelector("main p.error[id^='error-']");
    const errorField = firstError && document.getElementById(firstError.id.slice(6));
    const usable = (el) => el && visible(el) && !el.disabled && !el.closest("[hidden]");
    const el = [errorField, document.querySelector("main [autofocus]"),
      document.querySelector("main .primary:not([disabled]):not([data-staff-only])"),
      document.getElementById("say-again"), document.getElementById("help-button")].find(usable);
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
    if (el.dataset.osk && osk) { osk.open(el, true); return; }  // OK on a field: its keyboard
    const typed = ["text", "tel", "email", "password", "search", "number"];
    if ((el.tagName === "INPUT" && typed.includes(el.type)) || el.tagName === "TEXTAREA") {
      if (el.form) el.form.requestSubmit();  // a field with no pad: OK sends what was typed
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
    if (!confirmBox.hidden) {  // "Start over?": ◀ ▶ OK choose, Help keeps going, Cancel = yes
      if (name === "next") move(1);
      else if (name === "back") move(-1);
      else if (name === "ok") activate();
      else if (name === "help") keepGoing();
      // Cancel again confirms, but not a bounce or a double press in the first second.
      else if (name === "cancel" && Date.now() - askedAt >= 1000) startOver();
    } else if (osk && osk.isOpen()) {  // the keyboard: ◀ ▶ across the keys, OK types, Cancel closes
      if (name === "next") osk.move(1);
      else if (name === "back") osk.move(-1);
      else if (name === "ok") osk.pressCursor();
      else if (name === "cancel") osk.close();
      else if (name === "help") window.location.href = body.dataset.help;
    } else if (name === "next") move(1);
    else if (name === "back") move(-1);
    else if (name === "ok") activate();
    else if (name === "help") window.location.href = body.dataset.help;
    else if (name === "call_staff") callStaff();
    else if (name === "cancel") {
      if (body.dataset.screen === "home.index") window.location.href = body.dataset.home;
      else askCancel();
    }
    document.dispatchEvent(new CustomEvent("kiosk-button", { detail: name }));
  }

  // --- Cancel asks first: "Bạn muốn hủy và làm lại từ đầu?" -----------------------------
  // The Cancel button, the physical Cancel and the header's title all ask; only "Có, làm lại
  // từ đầu" wipes (the cancel form, or the start screen when the screen has no flow). The
  // title on the start screen needs no question (nothing to lose).
  const cancelForm = document.querySelector("form.cancel");
  const brand = document.querySelector(".bar .brand");
  let askedAt = 0;
  let before = null;
  function askCancel() {
    if (osk) osk.close();
    before = document.activeElement;
    confirmBox.hidden = false;
    askedAt = Date.now();
    body.dataset.confirm = "open";
    document.getElementById("cancel-no").focus({ focusVisible: true });
  }
  function keepGoing() {
    confirmBox.hidden = true;
    delete body.dataset.confirm;
    // Back where the citizen was, unless that was Cancel itself (never the focus to come back to).
    const back = before && before.id !== "cancel-button" && before !== body;
    if (back && document.contains(before) && visible(before)) {
      before.focus({ focusVisible: true });
    } else focusFirst();
  }
  function startOver() {
    confirmBox.hidden = true;
    if (cancelForm) cancelForm.submit();  // submit() does not come back through the listener
    else window.location.href = body.dataset.home;
  }
  if (cancelForm) {
    cancelForm.addEventListener("submit", (e) => { e.preventDefault(); askCancel(); });
  }
  brand.addEventListener("click", (e) => {
    if (body.dataset.screen === "home.index") return;
    e.preventDefault();
    askCancel();
  });
  document.getElementById("cancel-no").addEventListener("click", keepGoing);
  document.getElementById("cancel-yes").addEventListener("click", startOver);
  // Holding Cancel 5 s: staff are called (one help.requested, reason long_press), then the
  // help screen shows the call and waits for them.
  function callStaff() {
    const form = new URLSearchParams({ csrf_token: csrf, reason: "long_press" });
    fetch(body.dataset.help, { method: "POST", body: form, credentials: "same-origin", redirect: "manual" })
      .catch(() => null)
      .then(() => { window.location.href = body.dataset.help; });
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

  // --- a sent form shows that it is working and cannot be sent twice ---------------------
  // After the submit event (a dialog may still cancel it, and the pressed button's name and
  // value must go with the form): its buttons are disabled and the pressed one says so.
  document.addEventListener("submit", (e) => {
    const form = e.target;
    if (form.dataset.busy === "true") { e.preventDefault(); return; }  // a second press
    const pressed = e.submitter;
    setTimeout(() => {
      if (e.defaultPrevented) return;
      form.dataset.busy = "true";
      form.querySelectorAll("button, input[type=submit]").forEach((b) => { b.disabled = true; });
      if (pressed && pressed.tagName === "BUTTON") {
        pressed.dataset.label = pressed.innerHTML;
        pressed.textContent = document.querySelector('meta[name="busy-text"]').content;
        pressed.setAttribute("aria-busy", "true");
      }
    }, 0);
  });
  // Back to a page kept by the browser (bfcache): its forms work again.
  window.addEventListener("pageshow", (e) => {
    if (!e.persisted) return;
    document.querySelectorAll("form[data-busy]").forEach((form) => {
      delete form.dataset.busy;
      form.querySelectorAll("button, input[type=submit]").forEach((b) => {
        b.disabled = false;
        if (b.dataset.label !== undefined) { b.innerHTML = b.dataset.label; delete b.dataset.label; }
        b.removeAttribute("aria-busy");
      });
    });
  });

  if (osk) osk.init();
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
