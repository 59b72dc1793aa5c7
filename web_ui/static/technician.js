// Button test: each physical button pressed lights up its label.
document.addEventListener("kiosk-button", (e) => {
  const el = document.querySelector('[data-test-button="' + e.detail + '"]');
  if (el) { el.classList.add("primary"); el.dataset.pressed = "true"; }
});
