// Shows whether the kiosk's parts are ready; the full screens arrive with the web UI issue.
(async function poll() {
  const el = document.getElementById("state");
  try {
    const r = await fetch("/api/status");
    const s = await r.json();
    const bad = Object.entries(s.parts).filter(([, p]) => !p.ok).map(([n]) => n);
    el.textContent = bad.length ? "Đang kiểm tra: " + bad.join(", ") : "Sẵn sàng";
  } catch (e) {
    el.textContent = "Không kết nối được với ki-ốt";
  }
  setTimeout(poll, 5000);
})();
