// The dashboard uploader: drop zone, file picker, paste (Ctrl/Cmd+V of an image) and the
// "From a URL" box. One XHR per file or URL, each with its own progress row. Each request goes
// to /dashboard/upload with the page's CSRF token in X-CSRF-Token and the current options; the
// answer is the API's upload JSON plus `html`, the new image cards rendered by the server.
"use strict";

(function () {
  const form = document.getElementById("upload-form");
  if (!form) return;
  const t = window.PicHub.t;
  const input = document.getElementById("file-input");
  const zone = document.getElementById("dropzone");
  const urlInput = document.getElementById("url-input");
  const list = document.getElementById("upload-list");
  const grid = document.getElementById("my-images");
  const empty = document.getElementById("no-images");
  const count = document.getElementById("image-count");
  const token = form.querySelector("input[name=csrf_token]").value;
  const maxBytes = Number(form.dataset.maxMb) * 1048576;
  const PARALLEL = 3;
  const queue = [];
  let active = 0;

  function humanSize(bytes) {
    if (bytes < 1024) return bytes + " B";
    if (bytes < 1048576) return (bytes / 1024).toFixed(1) + " KB";
    return (bytes / 1048576).toFixed(1) + " MB";
  }

  function row(label, sizeText) {
    const li = document.createElement("li");
    li.className = "upload-item";
    const name = document.createElement("span");
    name.className = "name";
    name.textContent = label;
    name.title = label;
    const size = document.createElement("span");
    size.className = "size";
    size.textContent = sizeText;
    const bar = document.createElement("progress");
    bar.max = 100;
    bar.value = 0;
    bar.setAttribute("aria-label", t("Upload progress of {name}", { name: label }));
    const status = document.createElement("span");
    status.className = "status";
    status.textContent = t("Waiting…");
    li.append(name, size, bar, status);
    list.prepend(li);
    return { li: li, bar: bar, status: status };
  }

  function options() {
    const data = new FormData();
    ["album_id", "quality", "description", "expires_in"].forEach(function (name) {
      const value = form.elements[name].value.trim();
      if (value !== "") data.append(name, value);
    });
    ["is_public", "convertToWebP", "remove_exif", "auto_rename"].forEach(function (name) {
      data.append(name, form.elements[name].checked ? "true" : "false");
    });
    return data;
  }

  function finish(item, ok, text) {
    item.ui.li.classList.add(ok ? "done" : "failed");
    item.ui.status.textContent = text;
    if (ok) item.ui.bar.value = 100;
  }

  function showCards(html, added) {
    if (!grid || !html) return;
    grid.insertAdjacentHTML("afterbegin", html);
    grid.firstElementChild.classList.add("fresh");
    if (empty) empty.hidden = true;
    if (count) count.textContent = String(Number(count.textContent) + added);
  }

  function answer(item, xhr) {
    let body = null;
    try { body = JSON.parse(xhr.responseText); } catch (e) { body = null; }
    if (xhr.status === 429) {
      const wait = Number(xhr.getResponseHeader("Retry-After") || "5");
      item.ui.status.textContent = t("Rate limited, retrying in {n} s…", { n: wait });
      setTimeout(function () { queue.unshift(item); pump(); }, wait * 1000);
      return;
    }
    if (xhr.status === 201 && body && body.success) {
      showCards(body.html, body.data.length);
      const failed = body.errors && body.errors.length ? body.errors[0].message : null;
      finish(item, !failed, failed || t("Uploaded"));
      return;
    }
    finish(item, false, (body && body.message) || t("Failed (HTTP {status})", { status: xhr.status }));
  }

  function send(item) {
    active += 1;
    const data = options();
    if (item.file) data.append("files[]", item.file, item.file.name);
    else data.append("url", item.url);
    const xhr = new XMLHttpRequest();
    xhr.open("POST", "/dashboard/upload");
    xhr.setRequestHeader("X-CSRF-Token", token);
    xhr.setRequestHeader("Accept", "application/json");
    item.ui.status.textContent = t("Uploading…");
    xhr.upload.addEventListener("progress", function (event) {
      if (item.file && event.lengthComputable) {
        item.ui.bar.value = Math.round((event.loaded / event.total) * 100);
      }
    });
    xhr.upload.addEventListener("load", function () {
      if (item.file) {
        item.ui.bar.value = 100;
        item.ui.status.textContent = t("Processing…");
      } else {
        item.ui.bar.removeAttribute("value"); // indeterminate while the server fetches
        item.ui.status.textContent = t("Fetching…");
      }
    });
    xhr.addEventListener("load", function () { answer(item, xhr); });
    xhr.addEventListener("error", function () { finish(item, false, t("Network error")); });
    xhr.addEventListener("loadend", function () { active -= 1; pump(); });
    xhr.send(data);
  }

  function pump() {
    while (active < PARALLEL && queue.length) send(queue.shift());
  }

  function add(files) {
    Array.prototype.forEach.call(files, function (file) {
      const ui = row(file.name, humanSize(file.size));
      if (file.size > maxBytes) {
        finish({ ui: ui }, false, t("Larger than {mb} MB", { mb: form.dataset.maxMb }));
        return;
      }
      queue.push({ file: file, ui: ui });
    });
    pump();
  }

  function readable(url) {
    try { return decodeURI(url); } catch (e) { return url; }
  }

  function addUrls(urls) {
    urls.forEach(function (url) { queue.push({ url: url, ui: row(readable(url), "URL") }); });
    pump();
  }

  function words(text) {
    return text.split(/\s+/).filter(function (word) { return word !== ""; });
  }

  // A screenshot on the clipboard is a File called "image.png": give it a name worth keeping.
  function named(file, index) {
    if (file.name && !/^image\.[a-z0-9]+$/i.test(file.name)) return file;
    const subtype = (file.type.split("/")[1] || "png").split("+")[0];
    const ext = subtype === "jpeg" ? "jpg" : subtype;
    const stamp = new Date().toISOString().slice(0, 19).replace(/[-:]/g, "").replace("T", "-");
    const name = "pasted-" + stamp + (index ? "-" + (index + 1) : "") + "." + ext;
    return new File([file], name, { type: file.type, lastModified: file.lastModified });
  }

  function clipboardFiles(data) {
    const files = [];
    Array.prototype.forEach.call(data ? data.items : [], function (item) {
      if (item.kind !== "file") return;
      const file = item.getAsFile();
      if (file) files.push(file);
    });
    return files;
  }

  function editable(target) {
    return target instanceof HTMLElement &&
      (target.isContentEditable || target.matches("input, textarea, select"));
  }

  input.addEventListener("change", function () {
    add(input.files);
    input.value = "";
  });
  // Enter in the URL box (or its button) submits the form: upload what the box holds.
  form.addEventListener("submit", function (event) {
    event.preventDefault();
    const urls = words(urlInput.value);
    if (!urls.length) return;
    urlInput.value = "";
    addUrls(urls);
  });

  // Paste: an image anywhere on the page (also while typing in a field) is uploaded with the
  // current options; a link pasted outside a field goes into the URL box, to be confirmed.
  document.addEventListener("paste", function (event) {
    const files = clipboardFiles(event.clipboardData);
    if (files.length) {
      event.preventDefault();
      add(files.map(named));
      return;
    }
    if (editable(event.target) || !event.clipboardData) return;
    const links = words(event.clipboardData.getData("text/plain")).filter(function (word) {
      return /^https?:\/\//i.test(word);
    });
    if (!links.length) return;
    event.preventDefault();
    urlInput.value = links.join(" ");
    urlInput.focus();
  });

  ["dragenter", "dragover"].forEach(function (type) {
    zone.addEventListener(type, function (event) {
      event.preventDefault();
      zone.classList.add("dragging");
    });
  });
  ["dragleave", "dragend", "drop"].forEach(function (type) {
    zone.addEventListener(type, function (event) {
      event.preventDefault();
      if (type !== "dragleave" || !zone.contains(event.relatedTarget)) zone.classList.remove("dragging");
    });
  });
  zone.addEventListener("drop", function (event) {
    if (event.dataTransfer && event.dataTransfer.files.length) add(event.dataTransfer.files);
  });
  // A file dropped next to the zone must not make the browser navigate away to it.
  window.addEventListener("dragover", function (event) { event.preventDefault(); });
  window.addEventListener("drop", function (event) { event.preventDefault(); });
})();
