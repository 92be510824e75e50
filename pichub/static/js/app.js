// PicHub UI behaviour shared by every page: copy buttons, confirmations, docs token hand-off.
// No inline scripts anywhere (the pages send a strict Content-Security-Policy).
"use strict";

(function () {
  function fallbackCopy(text) {
    const area = document.createElement("textarea");
    area.value = text;
    area.setAttribute("readonly", "");
    area.style.position = "fixed";
    area.style.opacity = "0";
    document.body.appendChild(area);
    area.select();
    let ok = false;
    try { ok = document.execCommand("copy"); } catch (e) { ok = false; }
    area.remove();
    return ok ? Promise.resolve() : Promise.reject(new Error("copy refused"));
  }

  function copyText(text) {
    if (navigator.clipboard && window.isSecureContext) {
      return navigator.clipboard.writeText(text).catch(function () { return fallbackCopy(text); });
    }
    return fallbackCopy(text);
  }

  function flashButton(button, label, cls) {
    if (!button.dataset.label) button.dataset.label = button.textContent;
    button.textContent = label;
    button.classList.add(cls);
    clearTimeout(button._pichubTimer);
    button._pichubTimer = setTimeout(function () {
      button.textContent = button.dataset.label;
      button.classList.remove(cls);
    }, 1500);
  }

  document.addEventListener("click", function (event) {
    const copy = event.target.closest("[data-copy]");
    if (copy) {
      event.preventDefault();
      copyText(copy.dataset.copy).then(
        function () { flashButton(copy, "Copied!", "copied"); },
        function () { flashButton(copy, "Press Ctrl+C", "copied"); }
      );
      return;
    }
    const docs = event.target.closest("[data-docs-token]");
    if (docs) {
      sessionStorage.setItem("pichub-docs-token", docs.dataset.docsToken);
      window.location.href = "/docs";
    }
  });

  document.addEventListener("submit", function (event) {
    const form = event.target;
    if (form.dataset && form.dataset.confirm && !window.confirm(form.dataset.confirm)) {
      event.preventDefault();
    }
  }, true);
})();
