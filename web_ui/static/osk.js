// The on-screen keyboard (Chromium in kiosk mode has none) and Vietnamese typing.
// window.VnType: pure functions (Telex, VNI, tone placement), tested from Chromium with a table
// of cases. window.KioskOsk: the one pad, shown at the bottom of the screen below the page (the
// page scrolls above it, so it never covers the field being typed), driven by touch or by the
// physical buttons (kiosk.js hands them over while the pad is open).
(function () {
  "use strict";

  // --- Vietnamese typing: pure functions --------------------------------------------------
  const SAC = "\u0301", HUYEN = "\u0300", HOI = "\u0309", NGA = "\u0303", NANG = "\u0323";
  const TONE_MARKS = /[\u0300\u0301\u0303\u0309\u0323]/g;
  const TELEX_TONES = { s: SAC, f: HUYEN, r: HOI, x: NGA, j: NANG };
  const VNI_TONES = { "1": SAC, "2": HUYEN, "3": HOI, "4": NGA, "5": NANG };
  const VOWELS = "aăâeêioôơuưy";
  const HATTED = "ăâêôơư";  // vowels with their own mark: the tone goes on them
  const CIRCUMFLEX = { a: "â", e: "ê", o: "ô" };
  const HORN = { o: "ơ", u: "ư" };
  const BREVE = { a: "ă" };
  const PLAIN = { "â": "a", "ê": "e", "ô": "o", "ơ": "o", "ư": "u", "ă": "a", "đ": "d" };
  const isVowel = (b) => VOWELS.indexOf(b) >= 0;

  // A word as letters without tone ({b: lower-case base, up: was upper case}) and its tone.
  function parse(word) {
    let tone = "";
    const letters = Array.from(word.normalize("NFC")).map((c) => {
      const lower = c.toLowerCase();
      const d = lower.normalize("NFD");
      const m = d.match(TONE_MARKS);
      if (m) tone = m[0];
      return { b: d.replace(TONE_MARKS, "").normalize("NFC"), up: c !== lower };
    });
    return { letters, tone };
  }

  // Where the tone mark goes in a word (letters' bases, lower case, no tone): the index, or -1.
  // The rules of the Vietnamese orthography (Quy tắc đặt dấu thanh): a vowel with its own mark
  // (ă â ê ô ơ ư) takes it ("ươ": the ơ); else with a final consonant the last vowel ("hoàn");
  // else three vowels the middle one ("ngoái"); two vowels the first ("mùa", "hái"), except
  // oa, oe, uy in the "new style" (kiểu mới: "hoà", "khoẻ", "thuỷ"; old style: "hòa", "thủy").
  // The u of "qu" and the i of "gi" before another vowel belong to the consonant ("quá", "giữa").
  function toneIndex(bases, style) {
    let e = bases.length;
    while (e > 0 && !isVowel(bases[e - 1])) e--;
    if (e === 0) return -1;
    let s = e;
    while (s > 0 && isVowel(bases[s - 1])) s--;
    const final = e < bases.length;
    if (e - s > 1 && s > 0 && ((bases[s - 1] === "q" && bases[s] === "u") ||
                               (bases[s - 1] === "g" && bases[s] === "i"))) s++;
    let hat = -1;
    for (let i = s; i < e; i++) if (HATTED.indexOf(bases[i]) >= 0) hat = i;
    if (hat >= 0) return hat;
    const n = e - s;
    if (n === 1) return s;
    if (final) return e - 1;
    if (n >= 3) return s + 1;
    if (style !== "old" && ["oa", "oe", "uy"].indexOf(bases[s] + bases[s + 1]) >= 0) return s + 1;
    return s;
  }

  function compose(w, style) {
    const bases = w.letters.map((l) => l.b);
    const at = w.tone ? toneIndex(bases, style) : -1;
    return w.letters.map((l, i) => {
      const c = i === at ? (l.b + w.tone).normalize("NFC") : l.b;
      return l.up ? c.toUpperCase() : c;
    }).join("");
  }

  function split(text) {
    const m = text.match(/\p{L}+$/u);
    return m ? [text.slice(0, m.index), m[0]] : [text, ""];
  }

  // The last run of vowels a key may change: [start, end), or null. The u of "qu" is not in it.
  function run(w) {
    const b = w.letters.map((l) => l.b);
    let e = b.length;
    while (e > 0 && !isVowel(b[e - 1])) e--;
    if (e === 0) return null;
    let s = e;
    while (s > 0 && isVowel(b[s - 1])) s--;
    if (e - s > 1 && s > 0 && b[s - 1] === "q" && b[s] === "u") s++;
    return [s, e];
  }

  // Put a mark (table: plain → marked) on the last vowel of the run that can take it; the same
  // key on a vowel that has it already takes it off (then the key is typed as a letter).
  // Returns "done", "undo" or "" (nothing to change).
  function mark(w, table) {
    const r = run(w);
    if (!r) return "";
    const L = w.letters;
    if (table.o === "ơ" && table.u === "ư") {  // u o → ư ơ together ("ươ")
      for (let i = r[0]; i < r[1] - 1; i++) {
        const u = L[i].b, o = L[i + 1].b;
        if ((u === "u" || u === "ư") && (o === "o" || o === "ơ")) {
          if (u === "ư" && o === "ơ") { L[i].b = "u"; L[i + 1].b = "o"; return "undo"; }
          L[i].b = "ư"; L[i + 1].b = "ơ";
          return "done";
        }
      }
    }
    for (let i = r[1] - 1; i >= r[0]; i--) {
      if (table[L[i].b]) { L[i].b = table[L[i].b]; return "done"; }
    }
    const marked = Object.values(table);
    for (let i = r[1] - 1; i >= r[0]; i--) {
      if (marked.indexOf(L[i].b) >= 0) { L[i].b = PLAIN[L[i].b]; return "undo"; }
    }
    return "";
  }

  function stroke(w) {  // đ: on the word's first letter (dd, or d9 in VNI)
    if (!w.letters.length) return "";
    const first = w.letters[0];
    if (first.b === "d") { first.b = "đ"; return "done"; }
    if (first.b === "đ") { first.b = "d"; return "undo"; }
    return "";
  }

  function tone(w, t) {
    if (!run(w)) return "";
    if (w.tone === t) { w.tone = ""; return "undo"; }
    w.tone = t;
    return "done";
  }

  // One key typed at the end of text, in a mode: "telex", "vni" or "off" (letters as they are).
  // style: "new" (hoà, thuỷ; the default) or "old" (hòa, thủy).
  function type(text, key, mode, style) {
    if (mode !== "telex" && mode !== "vni") return text + key;
    const parts = split(text);
    const w = parse(parts[1]);
    const k = key.toLowerCase();
    let done = "";
    if (mode === "telex") {
      if (TELEX_TONES[k]) done = tone(w, TELEX_TONES[k]);
      else if (k === "z") done = w.tone ? (w.tone = "", "done") : "";
      else if (CIRCUMFLEX[k]) done = mark(w, { [k]: CIRCUMFLEX[k] });
      else if (k === "w") {
        done = mark(w, { a: "ă", o: "ơ", u: "ư" });
        if (!done && !run(w)) {  // a w with no vowel before it is ư ("tw" → "tư")
          w.letters.push({ b: "ư", up: key !== k });
          done = "done";
        }
      } else if (k === "d") done = stroke(w);
    } else {
      if (VNI_TONES[k]) done = tone(w, VNI_TONES[k]);
      else if (k === "0") done = w.tone ? (w.tone = "", "done") : "";
      else if (k === "6") done = mark(w, CIRCUMFLEX);
      else if (k === "7") done = mark(w, HORN);
      else if (k === "8") done = mark(w, BREVE);
      else if (k === "9") done = stroke(w);
    }
    if (done === "done") return parts[0] + compose(w, style);
    if (done === "undo") return parts[0] + compose(w, style) + key;
    if (!w.tone || !/\p{L}/u.test(key)) return text + key;
    // A letter after a toned word: the tone moves if it must ("hòa" + n → "hoàn").
    return parts[0] + compose(parse(parts[1] + key), style);
  }

  function typeAll(text, keys, mode, style) {
    return Array.from(keys).reduce((t, k) => type(t, k, mode, style), text);
  }

  // A tone key on the pad (sắc huyền hỏi ngã nặng): on the last word, same placement; the same
  // tone again takes it off.
  function setTone(text, t, style) {
    const parts = split(text);
    const w = parse(parts[1]);
    return tone(w, t) ? parts[0] + compose(w, style) : text;
  }

  window.VnType = { type, typeAll, setTone, toneIndex, TONES: { SAC, HUYEN, HOI, NGA, NANG } };

  // --- the pad ------------------------------------------------------------------------------
  const MODES = ["telex", "vni", "off"];
  const TONE_KEYS = [["sắc", SAC], ["huyền", HUYEN], ["hỏi", HOI], ["ngã", NGA], ["nặng", NANG]];
  const LAYOUTS = {
    text: [
      "1 2 3 4 5 6 7 8 9 0 {back}",
      "Q W E R T Y U I O P Đ",
      "A S D F G H J K L Ă Â",
      "Z X C V B N M Ê Ô Ơ Ư",
      "{tones} - . , / @",
      "{mode} {space} {hide} {done}",
    ],
    digits: ["1 2 3 4 5", "6 7 8 9 0", "{back} {hide} {done}"],
  };
  const labels = (document.getElementById("osk-labels") || { dataset: {} }).dataset;
  const pads = {};
  let target = null;  // the field the keys type into
  let kind = null;
  let cursor = -1;  // the key the physical buttons are on (-1: none yet)
  let hiding = null;

  function modeOf(input) {
    if (input.dataset.osk === "digits") return "off";  // digits never change
    if (input.dataset.oskMode) return input.dataset.oskMode;
    return input.dataset.case === "upper" ? "off" : "telex";  // codes: letters as they are
  }
  function modeLabel(mode) {
    return mode === "telex" ? "Telex" : mode === "vni" ? "VNI" : (labels.off || "abc");
  }
  function style() {
    return document.body.dataset.toneStyle === "old" ? "old" : "new";
  }

  function emit(input) {
    input.dispatchEvent(new Event("input", { bubbles: true }));
  }
  function put(input, value) {
    if (input.maxLength > 0 && Array.from(value).length > input.maxLength) return;
    input.value = value;
    try { input.setSelectionRange(value.length, value.length); } catch (e) { /* no caret here */ }
    emit(input);
  }

  function keyAction(k) {
    const input = target;
    if (!input) return;
    if (k === "back") put(input, Array.from(input.value).slice(0, -1).join(""));
    else if (k === "space") put(input, input.value + " ");
    else if (k === "hide") { close(); return; }
    else if (k === "done") {
      close();
      if (input.form) input.form.requestSubmit();
      return;
    } else if (k === "mode") {
      const next = MODES[(MODES.indexOf(modeOf(input)) + 1) % MODES.length];
      input.dataset.oskMode = next;
      pads.text.querySelector('[data-k="mode"]').textContent = modeLabel(next);
    } else if (k.startsWith("tone:")) put(input, setTone(input.value, k.slice(5), style()));
    else {
      // Capitals: codes all through; names (Telex, VNI) at the start of each word; "off"
      // (e-mail addresses) never.
      const mode = modeOf(input);
      const wordStart = input.value.length === 0 || input.value.slice(-1) === " ";
      const upper = input.dataset.case === "upper" || (mode !== "off" && wordStart);
      const ch = !upper && /\p{L}/u.test(k) ? k.toLowerCase() : k;
      put(input, type(input.value, ch, mode, style()));
    }
    input.focus({ preventScroll: true });
  }

  function build(name) {
    const pad = document.createElement("div");
    pad.className = "osk " + name;
    pad.id = "osk-" + name;
    pad.hidden = true;
    pad.setAttribute("aria-hidden", "true");
    pad.addEventListener("pointerdown", (e) => e.preventDefault());  // the field keeps the focus
    LAYOUTS[name].forEach((row) => {
      const line = document.createElement("div");
      line.className = "row";
      const keys = [];
      row.split(" ").forEach((k) => {
        if (k === "{tones}") TONE_KEYS.forEach(([n, t]) => keys.push([n, "tone:" + t, "tone"]));
        else if (k === "{back}") keys.push(["⌫", "back", "fn"]);
        else if (k === "{space}") keys.push([labels.space || "␣", "space", "wide"]);
        else if (k === "{hide}") keys.push([labels.hide || "▼", "hide", "fn"]);
        else if (k === "{done}") keys.push([labels.done || "OK", "done", "done"]);
        else if (k === "{mode}") keys.push(["Telex", "mode", "fn"]);
        else keys.push([k, k, ""]);
      });
      keys.forEach(([text, k, cls]) => {
        const b = document.createElement("button");
        b.type = "button";
        b.tabIndex = -1;
        b.dataset.nofocus = "";
        b.dataset.k = k;
        b.textContent = text;
        if (cls) b.className = cls;
        b.addEventListener("click", () => keyAction(k));
        line.appendChild(b);
      });
      pad.appendChild(line);
    });
    document.body.appendChild(pad);
    return pad;
  }

  function keys() {
    return kind ? Array.from(pads[kind].querySelectorAll("button")) : [];
  }
  function showCursor() {
    keys().forEach((b, i) => b.classList.toggle("kfocus", i === cursor));
  }

  // Open the pad for a field; byButtons: the key focus starts on the first letter (or digit).
  function open(input, byButtons) {
    clearTimeout(hiding);
    const name = input.dataset.osk === "digits" ? "digits" : "text";
    if (kind && kind !== name) pads[kind].hidden = true;
    target = input;
    kind = name;
    const pad = pads[name];
    if (name === "text") pad.querySelector('[data-k="mode"]').textContent = modeLabel(modeOf(input));
    pad.hidden = false;
    document.body.classList.add("osk-open");
    document.body.dataset.osk = "open";
    cursor = byButtons ? keys().findIndex((b) => b.dataset.k === (name === "text" ? "Q" : "1")) : -1;
    showCursor();
    // The page above the pad is smaller now: bring the field into its view.
    requestAnimationFrame(() => input.scrollIntoView({ block: "center" }));
  }
  function close() {
    clearTimeout(hiding);
    if (kind) pads[kind].hidden = true;
    kind = null;
    cursor = -1;
    document.body.classList.remove("osk-open");
    delete document.body.dataset.osk;
  }
  function isOpen() {
    return kind !== null;
  }
  // ◀ ▶ across the keys, row after row, wrapping at the end.
  function move(step) {
    const list = keys();
    if (!list.length) return;
    cursor = cursor < 0 ? 0 : (cursor + step + list.length) % list.length;
    showCursor();
  }
  function pressCursor() {
    const list = keys();
    if (cursor < 0) { move(1); return; }
    list[cursor].click();
  }

  function init() {
    const fields = document.querySelectorAll("[data-osk]");
    if (!fields.length) return;
    pads.text = build("text");
    pads.digits = build("digits");
    fields.forEach((input) => {
      // A touch on a field types into that field from now on, even before it has the focus.
      input.addEventListener("pointerdown", () => open(input, false));
      input.addEventListener("focus", () => { if (isOpen() && target !== input) open(input, false); });
      input.addEventListener("blur", () => {
        // Hidden a moment after the field loses the focus (to something that is not a field
        // with a pad), so that the tap which moved the focus lands before the layout changes.
        hiding = setTimeout(() => {
          const now = document.activeElement;
          if (!(now && now.dataset && now.dataset.osk)) close();
        }, 400);
      });
    });
  }

  window.KioskOsk = { init, open, close, isOpen, move, pressCursor, target: () => target };
})();
