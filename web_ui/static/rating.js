// The one-tap satisfaction rating (templates/_rating.html): send it without leaving the
// screen, thank the citizen, and give the focus back to the screen's primary button.
"use strict";
(function () {
  const box = document.getElementById("rating");
  if (!box) return;
  box.querySelectorAll("form[data-rating]").forEach((form) => {
    form.addEventListener("submit", (ev) => {
      ev.preventDefault();
      fetch(form.action, { method: "POST", body: new FormData(form), credentials: "same-origin" })
        .catch(() => null);  // a lost tap is only a lost count; the flow goes on
      const thanks = document.createElement("p");
      thanks.id = "rating-thanks";
      thanks.className = "rating-q";
      thanks.setAttribute("role", "status");
      thanks.textContent = box.dataset.thanks;
      box.replaceChildren(thanks);
      const primary = document.querySelector("#done, .btn.primary");
      if (primary) primary.focus();
    });
  });
})();
