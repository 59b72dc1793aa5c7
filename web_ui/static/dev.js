// Developer panel: presses simulated GPIO buttons and shows the daemon's answer.
const out = document.getElementById("out");
const token = document.querySelector('meta[name="kiosk-token"]').content;
async function post(url) {
  const r = await fetch(url, { method: "POST", headers: { "X-Kiosk-Token": token } });
  out.textContent = r.status + " " + JSON.stringify(await r.json(), null, 2);
}
document.querySelectorAll("[data-button]").forEach((b) =>
  b.addEventListener("click", () => {
    const hold = b.dataset.hold ? "?hold=" + b.dataset.hold : "";
    post("/api/dev/buttons/" + b.dataset.button + "/press" + hold);
  }));
document.querySelectorAll("[data-door]").forEach((b) =>
  b.addEventListener("click", () => post("/api/dev/door/" + b.dataset.door)));
document.getElementById("print-test").addEventListener("click", () => post("/api/printer/test"));
