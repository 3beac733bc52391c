/* Upload page: drop or choose several files; each goes in its own request (two at a time)
 * and its outcome (the server's HTML fragment, accepted or refused) replaces its row. */
(function () {
  "use strict";

  const form = document.getElementById("upload-form");
  const input = document.getElementById("upload-input");
  const results = document.getElementById("upload-results");
  if (!form || !input || !results) return;
  const endpoint = form.dataset.endpoint;
  const csrf = form.querySelector('input[name="csrfmiddlewaretoken"]').value;
  const CONCURRENCY = 2;
  const queue = [];
  let active = 0;

  function row(file) {
    const li = document.createElement("li");
    li.className = "upload-result pending";
    const name = document.createElement("strong");
    name.className = "filename";
    name.textContent = file.name;
    const note = document.createElement("span");
    note.className = "muted";
    note.textContent = ` uploading (${(file.size / 1e6).toFixed(1)} MB)…`;
    li.append(name, note);
    const placeholder = results.querySelector(".placeholder");
    if (placeholder) placeholder.remove();
    results.prepend(li);
    return li;
  }

  function replace(li, html) {
    const tpl = document.createElement("template");
    tpl.innerHTML = html.trim();
    const fresh = tpl.content.firstElementChild;
    if (fresh) li.replaceWith(fresh);
  }

  async function send(file, li) {
    const body = new FormData();
    body.append("file", file, file.name);
    try {
      const response = await fetch(endpoint, {
        method: "POST",
        body,
        credentials: "same-origin",
        headers: { "X-CSRFToken": csrf, "HX-Request": "true" },
      });
      const html = await response.text();
      if ((response.headers.get("content-type") || "").startsWith("text/html") && html.includes("upload-result")) {
        replace(li, html);
      } else {
        li.className = "upload-result refused";
        li.lastChild.textContent = ` refused: the server answered ${response.status} ${response.statusText}`;
      }
    } catch (err) {
      li.className = "upload-result refused";
      li.lastChild.textContent = ` not sent: ${err.message}; check the connection and try again`;
    }
  }

  function pump() {
    while (active < CONCURRENCY && queue.length) {
      const job = queue.shift();
      active += 1;
      send(job.file, job.li).finally(() => { active -= 1; pump(); });
    }
  }

  function enqueue(files) {
    for (const file of files) queue.push({ file, li: row(file) });
    pump();
  }

  input.addEventListener("change", () => {
    enqueue(Array.from(input.files));
    input.value = "";
  });
  form.addEventListener("submit", (e) => {
    e.preventDefault();
    enqueue(Array.from(input.files));
  });
  ["dragenter", "dragover"].forEach((type) => form.addEventListener(type, (e) => {
    e.preventDefault();
    form.classList.add("dragging");
  }));
  ["dragleave", "drop"].forEach((type) => form.addEventListener(type, (e) => {
    e.preventDefault();
    form.classList.remove("dragging");
  }));
  form.addEventListener("drop", (e) => enqueue(Array.from(e.dataTransfer.files)));
})();
