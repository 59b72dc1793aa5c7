// Button test: each physical button pressed lights up its label.
document.addEventListener("kiosk-button", (e) => {
  const el = document.querySelector('[data-test-button="' + e.detail + '"]');
  if (el) { el.classList.add("primary"); el.dataset.pressed = "true"; }
});

// Calls for staff: the panel reloads when a call opens or closes (checked every 3 s).
(function () {
  const table = document.getElementById("calls");
  if (!table) return;
  async function check() {
    try {
      const r = await fetch(table.dataset.calls, { credentials: "same-origin", headers: { Accept: "application/json" } });
      if (r.ok && (await r.json()).open.join(",") !== table.dataset.open) { window.location.reload(); return; }
    } catch (e) { /* the next check tries again */ }
    setTimeout(check, 3000);
  }
  setTimeout(check, 3000);
})();
