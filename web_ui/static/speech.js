// Spoken guidance: on entering a screen the kiosk says its instruction aloud (POST /live/say;
// the daemon speaks it in the session's language and cuts off what it was saying). What is said:
// the elements marked data-say, else the visible h1, .priority-mark and .big-number (a ticket's
// priority and number), .lead, .amount (the fee), .guidance and error texts. Never input values, nor anything inside .personal or [data-nosay].
// "Nghe lại" (#say-again) and a long press (1 s) on the on-screen Help button say it again; the
// camera screens' live guidance is said when it changes, at most every GUIDE_GAP_MS. The staff
// screens (technician, developer panel) say nothing unless asked. The idle warning and the cancel
// question say their heading when they open. docs/web-ui.md, "Spoken
// guidance".
(function () {
  "use strict";
  const token = document.querySelector('meta[name="kiosk-token"]').content;
  const main = document.getElementById("main");
  const MAX_CHARS = 600;  // web_ui/live.py SAY_MAX_CHARS
  const GUIDE_GAP_MS = 3000;
  const LONG_PRESS_MS = 1000;
  const QUIET = /^(technician|pages)\./;  // staff screens: not spoken on entering
  const DEFAULT = "h1, .priority-mark, .big-number, .lead, .amount, .guidance, .error, [role=alert]";
  const NEVER = ".personal, [data-nosay], input, textarea, select, option, script, style, svg, .osk";

  function shown(el) {
    return el.getClientRects().length > 0 && !el.closest("[hidden]");
  }
  // The element's words, leaving out hidden parts, personal data and form fields; each block
  // (paragraph, list item, row) ends as a sentence, and a numbered list says its numbers.
  const BLOCKS = /^(P|LI|DIV|H[1-6]|TR|DT|DD|SECTION|UL|OL|TABLE)$/;
  const BREAK = "\u2029";  // Unicode's paragraph separator: never in a template's text
  function words(el) {
    const out = [];
    (function walk(node) {
      node.childNodes.forEach((child) => {
        if (child.nodeType === Node.TEXT_NODE) { out.push(child.textContent); return; }
        if (child.nodeType !== Node.ELEMENT_NODE || child.matches(NEVER) || child.hidden
            || child.getAttribute("aria-hidden") === "true") return;
        if (child.tagName === "LI" && node.tagName === "OL") {
          out.push(" " + (Array.prototype.indexOf.call(node.children, child) + 1) + ". ");
        }
        walk(child);
        if (BLOCKS.test(child.tagName)) out.push(BREAK);
      });
    })(el);
    return sentences(out.join(" ").split(BREAK));
  }
  // Pieces joined as sentences: each ends with a stop unless it has its own punctuation.
  function sentences(pieces) {
    // "2.000 đ": espeak-ng says the letter, so the currency is said as a word.
    const dong = document.documentElement.lang === "en" ? "$1 dong" : "$1 đồng";
    return pieces.map((t) => t.replace(/\s+/g, " ").replace(/\s*·\s*/g, ". ")
      .replace(/(\d)\s*đ(?!\p{L})/gu, dong).trim())
      .filter((t) => t && !/^\d+\.$/.test(t))
      .map((t) => (/[.!?:…]$/.test(t) ? t : t + "."))
      .join(" ");
  }
  function spoken(scope, selector) {
    const picked = Array.from(scope.querySelectorAll(selector))
      .filter((el) => shown(el) && !el.closest(NEVER));
    // An element inside another one picked is said with it, not twice.
    return picked.filter((el) => !picked.some((other) => other !== el && other.contains(el)));
  }
  // What this screen says on entering, in parts of at most MAX_CHARS: the marked elements in
  // order, as many to a part as fit (an element longer than that is cut at a word). Only a long
  // marked text (the consent) has more than one part; the first is said at once, the others
  // queued after it. screenText(), the first part, is exported for the docs' table
  // (tests/test_speech_browser.py).
  function cut(text) {
    return text.length > MAX_CHARS ? text.slice(0, text.lastIndexOf(" ", MAX_CHARS)) : text;
  }
  function screenParts() {
    const marked = spoken(main, "[data-say]");
    if (!marked.length) return [cut(sentences(spoken(main, DEFAULT).map(words)))];
    const parts = [];
    marked.map(words).forEach((piece) => {
      const last = parts.length ? parts[parts.length - 1] : null;
      const joined = last === null ? piece : sentences([last, piece]);
      if (last !== null && joined.length <= MAX_CHARS) parts[parts.length - 1] = joined;
      else if (piece) parts.push(cut(piece));
    });
    return parts.length ? parts : [""];
  }
  function screenText() { return screenParts()[0]; }
  let lastSaid = 0;
  function say(text, queue) {
    lastSaid = Date.now();
    document.body.dataset.said = String(Number(document.body.dataset.said || "0") + 1);
    return fetch("/live/say", {
      method: "POST", credentials: "same-origin",
      headers: { "X-Kiosk-Token": token, "Content-Type": "application/json" },
      body: JSON.stringify({ text: text.slice(0, MAX_CHARS), queue: Boolean(queue) }),
    }).catch(() => {});
  }
  // The first part cuts off what was being said; the others follow it, in order.
  function sayScreen() {
    const parts = screenParts();
    return parts.slice(1).reduce((done, part) => done.then(() => say(part, true)),
      say(parts[0]));
  }
  window.kioskSpeech = { screenText: screenText, screenParts: screenParts, sayScreen: sayScreen };

  // --- "Nghe lại" and a long press on Help ---------------------------------------------
  const again = document.getElementById("say-again");
  if (again) again.addEventListener("click", sayScreen);
  const help = document.getElementById("help-button");
  if (help) {
    let timer = null;
    let held = false;
    const release = () => { clearTimeout(timer); timer = null; };
    help.addEventListener("pointerdown", () => {
      held = false;
      release();
      timer = setTimeout(() => { held = true; sayScreen(); }, LONG_PRESS_MS);
    });
    ["pointerup", "pointerleave", "pointercancel"].forEach((t) => help.addEventListener(t, release));
    help.addEventListener("contextmenu", (e) => e.preventDefault());  // a held touch, not a menu
    help.addEventListener("click", (e) => {
      if (held) { e.preventDefault(); held = false; }  // it was "say again", not "go to Help"
    });
  }

  // --- the camera screens' live guidance (aria-live), said when it changes -------------
  document.querySelectorAll(".guidance").forEach((el) => {
    if (el.closest(NEVER)) return;
    let heard = words(el);
    let waiting = null;
    function maybeSay() {
      waiting = null;
      const now = words(el);
      if (!now || now === heard || !shown(el)) return;
      const wait = lastSaid + GUIDE_GAP_MS - Date.now();
      if (wait > 0) { waiting = setTimeout(maybeSay, wait); return; }
      heard = now;
      say(now);
    }
    new MutationObserver(() => { if (!waiting) maybeSay(); })
      .observe(el, { childList: true, characterData: true, subtree: true });
  });

  // --- the idle warning ("Are you still there?") and the cancel question ("Do you want to
  // cancel and start over?"): their heading is said when they appear ----------------------
  ["idle-warning", "cancel-confirm"].forEach((id) => {
    const dialog = document.getElementById(id);
    if (!dialog) return;
    new MutationObserver(() => {
      if (!dialog.hidden) say(words(dialog.querySelector("h2")));
    }).observe(dialog, { attributes: true, attributeFilter: ["hidden"] });
  });

  if (!QUIET.test(document.body.dataset.screen || "")) sayScreen();
})();
