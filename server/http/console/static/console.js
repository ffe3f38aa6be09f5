// The console works without this file; it only adds conveniences. It is served from the
// console itself (the Content-Security-Policy allows no inline or outside script).
"use strict";

document.addEventListener("DOMContentLoaded", () => {
  // "Copy" buttons for invites and tokens: shown only where the clipboard can be used.
  for (const button of document.querySelectorAll("button[data-copy]")) {
    const field = document.getElementById(button.dataset.copy);
    if (!field || !navigator.clipboard) continue;
    button.hidden = false;
    button.addEventListener("click", async () => {
      await navigator.clipboard.writeText(field.value);
      button.classList.add("done");
    });
  }
  // Forms that end something (deactivate, revoke, remove) ask once before they are sent.
  for (const form of document.querySelectorAll("form[data-confirm]")) {
    form.addEventListener("submit", (event) => {
      if (!window.confirm(form.dataset.confirm)) event.preventDefault();
    });
  }
  // A secret is selected when it is clicked, ready to copy by hand.
  for (const secret of document.querySelectorAll("textarea.secret")) {
    secret.addEventListener("focus", () => secret.select());
  }
});
