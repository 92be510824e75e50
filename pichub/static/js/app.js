// PicHub UI behaviour shared by every page: copy buttons, signed links of private images,
// confirmations, docs token hand-off.
// No inline scripts anywhere (the pages send a strict Content-Security-Policy).
"use strict";

// The page's language for what the scripts say: base.html's `pichub-messages` meta maps each
// English message to its translation (empty in English). `t("Larger than {mb} MB", {mb: 20})`.
window.PicHub = window.PicHub || {};
window.PicHub.t = (function () {
  let messages = {};
  try {
    const meta = document.querySelector('meta[name="pichub-messages"]');
    messages = meta ? JSON.parse(meta.content || "{}") : {};
  } catch (e) { messages = {}; }
  return function (text, values) {
    let out = messages[text] || text;
    Object.keys(values || {}).forEach(function (key) {
      out = out.split("{" + key + "}").join(String(values[key]));
    });
    return out;
  };
})();

(function () {
  const t = window.PicHub.t;
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

  // A private image's card: ask the server for a signed link (session + CSRF header, the
  // API's link service), then show it and copy it.
  function signedLink(button) {
    const box = button.closest("[data-signed-link]");
    const card = button.closest(".card") || document;
    const data = new FormData();
    data.append("expires_in", box.querySelector("select").value);
    fetch(box.dataset.signedLink, {
      method: "POST", body: data, credentials: "same-origin",
      headers: { "X-CSRF-Token": card.querySelector("input[name=csrf_token]").value }
    }).then(function (response) {
      return response.json().then(function (body) {
        if (!response.ok) throw new Error(body.message || "refused");
        return body.data.url;
      });
    }).then(function (url) {
      const shown = box.querySelector(".signed-link-url");
      shown.value = url;
      shown.hidden = false;
      return copyText(url).then(
        function () { flashButton(button, t("Copied!"), "copied"); },
        function () { shown.select(); flashButton(button, t("Press Ctrl+C"), "copied"); });
    }).catch(function () { flashButton(button, t("Failed — try again"), "failed"); });
  }

  document.addEventListener("click", function (event) {
    const signed = event.target.closest("[data-signed-link-button]");
    if (signed) {
      event.preventDefault();
      signedLink(signed);
      return;
    }
    const copy = event.target.closest("[data-copy]");
    if (copy) {
      event.preventDefault();
      copyText(copy.dataset.copy).then(
        function () { flashButton(copy, t("Copied!"), "copied"); },
        function () { flashButton(copy, t("Press Ctrl+C"), "copied"); }
      );
      return;
    }
    const docs = event.target.closest("[data-docs-token]");
    if (docs) {
      sessionStorage.setItem("pichub-docs-token", docs.dataset.docsToken);
      window.location.href = "/docs";
    }
  });

  // Placeholders: an <img data-blurhash> comes with its dominant colour as its background
  // (from the server, shown before any script runs); here its BlurHash is drawn small and
  // stretched over that background, and both go once the image has loaded, so transparent
  // pixels show the page. The decoder is blurha.sh's algorithm.
  const B83 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz#$%*+,-.:;=?@[]^_{|}~";
  const HASH_PIXELS = 32; // the long side the hash is drawn at; CSS stretches it

  function base83(text) {
    let value = 0;
    for (const c of text) value = value * 83 + B83.indexOf(c);
    return value;
  }
  function toLinear(v) {
    v /= 255;
    return v <= 0.04045 ? v / 12.92 : Math.pow((v + 0.055) / 1.055, 2.4);
  }
  function toSrgb(v) {
    v = Math.max(0, Math.min(1, v));
    return Math.round(255 * (v <= 0.0031308 ? v * 12.92 : 1.055 * Math.pow(v, 1 / 2.4) - 0.055));
  }
  function signedSquare(v) { return Math.sign(v) * v * v; }

  function blurhashDataURL(hash, width, height) {
    if (!/^[0-9A-Za-z#$%*+,\-.:;=?@[\]^_{|}~]{6,}$/.test(hash)) return null;
    const sizes = base83(hash[0]), nx = (sizes % 9) + 1, ny = Math.floor(sizes / 9) + 1;
    if (hash.length !== 4 + 2 * nx * ny) return null;
    const max = (base83(hash[1]) + 1) / 166;
    const dc = base83(hash.slice(2, 6));
    const colours = [[toLinear(dc >> 16), toLinear((dc >> 8) & 255), toLinear(dc & 255)]];
    for (let k = 1; k < nx * ny; k++) {
      const ac = base83(hash.slice(4 + 2 * k, 6 + 2 * k));
      colours.push([Math.floor(ac / 361), Math.floor(ac / 19) % 19, ac % 19].map(
        function (q) { return signedSquare((q - 9) / 9) * max; }));
    }
    const canvas = document.createElement("canvas");
    canvas.width = width;
    canvas.height = height;
    const context = canvas.getContext("2d");
    if (!context) return null;
    const pixels = context.createImageData(width, height);
    for (let y = 0; y < height; y++) {
      for (let x = 0; x < width; x++) {
        const rgb = [0, 0, 0];
        for (let j = 0; j < ny; j++) {
          for (let i = 0; i < nx; i++) {
            const basis = Math.cos(Math.PI * x * i / width) * Math.cos(Math.PI * y * j / height);
            const c = colours[i + j * nx];
            rgb[0] += c[0] * basis; rgb[1] += c[1] * basis; rgb[2] += c[2] * basis;
          }
        }
        const at = 4 * (x + y * width);
        pixels.data[at] = toSrgb(rgb[0]);
        pixels.data[at + 1] = toSrgb(rgb[1]);
        pixels.data[at + 2] = toSrgb(rgb[2]);
        pixels.data[at + 3] = 255;
      }
    }
    context.putImageData(pixels, 0, 0);
    return canvas.toDataURL("image/png");
  }

  function placeholderDone(img) {
    img.style.removeProperty("background-color");
    img.style.removeProperty("background-image");
    img.classList.add("placeholder-done");
  }

  function paintPlaceholder(img) {
    if (img.complete && img.naturalWidth) { placeholderDone(img); return; }
    const w = Number(img.getAttribute("width")) || 1, h = Number(img.getAttribute("height")) || 1;
    const scale = HASH_PIXELS / Math.max(w, h);
    const url = blurhashDataURL(img.dataset.blurhash,
      Math.max(1, Math.round(w * scale)), Math.max(1, Math.round(h * scale)));
    if (url && !img.complete) img.style.backgroundImage = "url(" + url + ")";
  }

  document.addEventListener("load", function (event) {
    if (event.target instanceof HTMLImageElement && event.target.dataset.blurhash !== undefined) {
      placeholderDone(event.target);
    }
  }, true);
  document.querySelectorAll("img[data-blurhash]").forEach(paintPlaceholder);
  new MutationObserver(function (changes) {  // cards the dashboard adds after an upload
    changes.forEach(function (change) {
      change.addedNodes.forEach(function (node) {
        if (node.querySelectorAll) node.querySelectorAll("img[data-blurhash]").forEach(paintPlaceholder);
      });
    });
  }).observe(document.body, { childList: true, subtree: true });

  document.addEventListener("submit", function (event) {
    const form = event.target;
    if (form.dataset && form.dataset.confirm && !window.confirm(form.dataset.confirm)) {
      event.preventDefault();
    }
  }, true);
})();
