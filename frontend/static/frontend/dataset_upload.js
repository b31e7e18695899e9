// Import a dataset without the web tier ever reading it: the browser checks the CSV, seals it to the
// organisation's node key (libsodium sealed box) and posts only the ciphertext; the node opens and imports
// it, and this page polls the dataset until the node says ready or failed.
//
// One <progress> follows the whole import: reading the file (its bytes), sealing it (no measure: one call),
// sending the sealed file (XMLHttpRequest's upload progress, in bytes) and the node's import (no measure: the
// node reports only its end). Its label changes continuously; the status line (aria-live) says each stage
// once and the sending's quarters, so a screen reader is told what happens without being flooded.
(function () {
  "use strict";
  var MAX_BYTES = 50 * 1024 * 1024;
  var FLASH_KEY = "dx-import-flash";
  var NEWLINE = 10;
  var MEGABYTE = 1024 * 1024;

  var form = document.getElementById("import-form");
  showFlash();
  if (!form) return;
  var lang = document.documentElement.lang || "en";
  var numbers = new Intl.NumberFormat(lang);
  var megabytes = new Intl.NumberFormat(lang, { minimumFractionDigits: 1, maximumFractionDigits: 1 });
  var percents = new Intl.NumberFormat(lang, { style: "percent", maximumFractionDigits: 0 });
  var submit = document.getElementById("import-submit");
  var status = document.getElementById("import-status");
  var progress = document.getElementById("import-progress");
  var bar = document.getElementById("import-progress-bar");
  var barLabel = document.getElementById("import-progress-label");
  var fields = {
    name: document.getElementById("import-name"),
    id_column: document.getElementById("import-id_column"),
    description: document.getElementById("import-description"),
    file: document.getElementById("import-file"),
  };
  var announcedQuarter = -1;

  // After a reload the success message of the import that just finished is shown like a Django message.
  function showFlash() {
    var text;
    try {
      text = sessionStorage.getItem(FLASH_KEY);
      sessionStorage.removeItem(FLASH_KEY);
    } catch (e) { return; }
    if (!text) return;
    var main = document.querySelector("main.page");
    if (!main) return;
    var list = main.querySelector("ul.messages");
    if (!list) {
      list = document.createElement("ul");
      list.className = "messages";
      main.insertBefore(list, main.firstChild);
    }
    var item = document.createElement("li");
    item.className = "message message-success";
    item.textContent = text;
    list.appendChild(item);
  }

  function setStatus(state, text) {
    status.dataset.status = state;
    status.textContent = text;
    status.hidden = !text;
  }

  // The bar: `fraction` in [0, 1], or null while a stage cannot be measured (an indeterminate bar).
  function showProgress(stage, label, fraction) {
    progress.hidden = false;
    progress.dataset.stage = stage;
    barLabel.textContent = label;
    if (fraction === null) bar.removeAttribute("value");
    else bar.value = Math.round(Math.min(Math.max(fraction, 0), 1) * 100);
  }

  function hideProgress() {
    progress.hidden = true;
    progress.dataset.stage = "";
  }

  function mb(bytes) { return megabytes.format(bytes / MEGABYTE); }

  function clearErrors() {
    form.querySelectorAll(".field-error").forEach(function (node) { node.textContent = ""; node.hidden = true; });
    form.querySelectorAll(".field-invalid").forEach(function (node) { node.classList.remove("field-invalid"); });
    var top = document.getElementById("import-error");
    top.textContent = "";
    top.hidden = true;
  }

  // A message next to the field it concerns, or on top of the form when it concerns no field of ours.
  function showError(field, message) {
    var target = field && document.getElementById("import-" + field + "-error");
    if (!target) target = document.getElementById("import-error");
    else target.closest(".field").classList.add("field-invalid");
    target.textContent = message;
    target.hidden = false;
  }

  // The API names the field at fault in `extra.field`, or lists validation errors in `extra.fields`.
  function showApiError(error) {
    var extra = error.extra || {};
    var field = extra.field;
    if (!field && extra.fields && typeof extra.fields === "object") field = Object.keys(extra.fields)[0];
    if (field === "sealed_file") field = "file";
    showError(field in fields ? field : null, error.message || String(error));
  }

  // The header row's cells, as the node's CSV reader sees them: quoted cells unquoted, blanks trimmed.
  function headerCells(bytes) {
    var end = bytes.indexOf(NEWLINE);
    var line = new TextDecoder("utf-8", { fatal: true }).decode(bytes.subarray(0, end < 0 ? bytes.length : end));
    line = line.replace(/^\uFEFF/, "").replace(/\r$/, "");
    var cells = [];
    var cell = "";
    var quoted = false;
    for (var i = 0; i < line.length; i++) {
      var ch = line[i];
      if (quoted && ch === "\"" && line[i + 1] === "\"") { cell += "\""; i++; }
      else if (ch === "\"") quoted = !quoted;
      else if (ch === "," && !quoted) { cells.push(cell.trim()); cell = ""; }
      else cell += ch;
    }
    cells.push(cell.trim());
    return cells;
  }

  // The file's bytes, with the reading's progress on the bar (a large file takes a moment to read).
  function readFile(file) {
    return new Promise(function (resolve, reject) {
      var reader = new FileReader();
      reader.onprogress = function (event) {
        if (!event.lengthComputable) return;
        showProgress("reading", interpolate(gettext("Reading the file: %(done)s MB of %(total)s MB"),
                                            { done: mb(event.loaded), total: mb(event.total) }, true),
                     event.loaded / event.total);
      };
      reader.onload = function () { resolve(new Uint8Array(reader.result)); };
      reader.onerror = function () { reject({ field: "file", message: gettext("The file could not be read.") }); };
      reader.readAsArrayBuffer(file);
    });
  }

  // What can be checked here is checked here, so a bad file is refused before anything is sent.
  function checkedFile(idColumn) {
    var file = fields.file.files && fields.file.files[0];
    if (!file) return Promise.reject({ field: "file", message: gettext("Choose a CSV file to import.") });
    if (file.size === 0) return Promise.reject({ field: "file", message: gettext("The file is empty.") });
    if (file.size > MAX_BYTES) {
      return Promise.reject({ field: "file", message: interpolate(
        gettext("The file is %(size)s MB; the limit is 50 MB."), { size: mb(file.size) }, true) });
    }
    setStatus("reading", gettext("Reading the file…"));
    showProgress("reading", gettext("Reading the file…"), 0);
    return readFile(file).then(function (bytes) {
      var cells;
      try { cells = headerCells(bytes); } catch (e) {
        throw { field: "file", message: gettext("The file is not UTF-8 text.") };
      }
      if (cells.every(function (cell) { return !cell; })) {
        throw { field: "file", message: gettext("The file is empty: a header row is required.") };
      }
      if (cells.indexOf(idColumn) < 0) {
        throw { field: "id_column", message: interpolate(
          gettext("The id column '%(column)s' is not in the header (%(header)s)."),
          { column: idColumn, header: cells.join(", ") }, true) };
      }
      return bytes;
    });
  }

  // The page carries the node's key; the API is asked only when the page had none (e.g. a node enrolled since).
  function nodeKey() {
    var key = form.dataset.nodeKey;
    var known = key ? Promise.resolve(key) : DxApi.get("/api/nodes/mine/").then(function (node) {
      return node.sealing_public_key;
    });
    return known.then(function (hex) {
      if (!/^[0-9a-f]{64}$/i.test(hex || "")) {
        throw { message: gettext("Your organisation's node has no sealing key yet, so nothing can be sealed to it.") };
      }
      return hex;
    });
  }

  function csrfToken() {
    var match = document.cookie.match(/(?:^|;\s*)csrftoken=([^;]+)/);
    if (match) return decodeURIComponent(match[1]);
    var field = form.querySelector("input[name=csrfmiddlewaretoken]");
    return field ? field.value : "";
  }

  // The sealed file is posted with XMLHttpRequest, whose upload events count the bytes sent (fetch has none);
  // a refusal becomes the same DxApi.ApiError as the API's other calls.
  function postWithProgress(url, body, onProgress) {
    return new Promise(function (resolve, reject) {
      var request = new XMLHttpRequest();
      request.open("POST", url);
      request.setRequestHeader("Accept", "application/json");
      request.setRequestHeader("Content-Type", "application/json");
      request.setRequestHeader("X-CSRFToken", csrfToken());
      request.upload.addEventListener("progress", function (event) {
        if (event.lengthComputable) onProgress(event.loaded, event.total);
      });
      request.addEventListener("load", function () {
        var data = null;
        try { data = request.responseText ? JSON.parse(request.responseText) : null; } catch (e) { data = null; }
        if (request.status >= 200 && request.status < 300) return resolve(data);
        var message = data && data.message ? data.message
          : interpolate(gettext("The server answered %(status)s."), { status: request.status }, true);
        reject(new DxApi.ApiError(request.status, message, data && data.extra));
      });
      request.addEventListener("error", function () {
        reject(new DxApi.ApiError(0, gettext("The server cannot be reached; check your connection and try again."), {}));
      });
      request.send(body);
    });
  }

  function sending(loaded, total) {
    var fraction = total ? loaded / total : 0;
    showProgress("uploading", interpolate(gettext("Sending the sealed file: %(done)s MB of %(total)s MB (%(percent)s)"),
                                          { done: mb(loaded), total: mb(total), percent: percents.format(fraction) }, true),
                 fraction);
    var quarter = Math.floor(fraction * 4);
    if (quarter === 0 && announcedQuarter < 0) {
      announcedQuarter = 0;
      setStatus("uploading", gettext("Sending the sealed file…"));
    } else if (quarter > announcedQuarter && quarter < 4) {
      announcedQuarter = quarter;
      setStatus("uploading", interpolate(gettext("Sending the sealed file… %(percent)s sent."),
                                         { percent: percents.format(quarter / 4) }, true));
    }
  }

  function waitForImport(dataset) {
    var started = Date.now();
    setStatus("importing", gettext("Sent. Importing on your node…"));
    showProgress("importing", gettext("Importing on your node…"), null);
    return DxApi.poll(
      function () { return DxApi.get("/api/datasets/" + dataset.id + "/"); },
      function (answer) { return answer.status === "ready" || answer.status === "failed"; },
      function () {
        var seconds = Math.round((Date.now() - started) / 1000);
        showProgress("importing", interpolate(ngettext("Importing on your node… (%(seconds)s second)",
                                                       "Importing on your node… (%(seconds)s seconds)", seconds),
                                              { seconds: numbers.format(seconds) }, true), null);
      }
    );
  }

  function rowsOf(answer) {
    var rows = answer.row_count !== undefined ? answer.row_count : answer.table && answer.table.row_count;
    if (typeof rows !== "number") return gettext("its rows");
    return interpolate(ngettext("%(count)s row", "%(count)s rows", rows), { count: numbers.format(rows) }, true);
  }

  function finished(answer) {
    if (answer.status === "failed") {
      hideProgress();
      setStatus("failed", "");
      showError("file", answer.error || gettext("Your node could not import the file."));
      submit.disabled = false;
      return;
    }
    var text = interpolate(gettext("Imported %(name)s: %(rows)s into your node's vault."),
                           { name: answer.name, rows: rowsOf(answer) }, true);
    showProgress("ready", text, 1);
    setStatus("ready", text);
    // Reload so the table and the product form list the new dataset; the message survives the reload.
    try {
      sessionStorage.setItem(FLASH_KEY, text);
      window.location.assign(form.dataset.doneUrl);
    } catch (e) { /* no sessionStorage: the status line already says it */ }
  }

  // Let the browser paint the new stage before a long synchronous step (sealing, encoding) holds the thread.
  function painted(value) {
    return new Promise(function (resolve) {
      window.requestAnimationFrame(function () { setTimeout(function () { resolve(value); }, 0); });
    });
  }

  function onSubmit(event) {
    event.preventDefault();
    clearErrors();
    announcedQuarter = -1;
    var name = fields.name.value.trim();
    var idColumn = fields.id_column.value.trim();
    if (!name) return showError("name", gettext("Give the dataset a name."));
    if (!idColumn) return showError("id_column", gettext("Name the column that holds the record ids."));
    submit.disabled = true;
    Promise.all([checkedFile(idColumn), nodeKey(), DxApi.sodiumReady()]).then(function (ready) {
      setStatus("sealing", gettext("Sealing the file in this browser…"));
      showProgress("sealing", gettext("Sealing the file in this browser…"), null);
      return painted(ready);
    }).then(function (ready) {
      var sodium = ready[2];
      var sealed = sodium.crypto_box_seal(ready[0], sodium.from_hex(ready[1]));
      var body = JSON.stringify({
        name: name,
        id_column: idColumn,
        description: fields.description.value,
        sealed_file: sodium.to_base64(sealed, sodium.base64_variants.ORIGINAL),
      });
      sending(0, body.length);
      return postWithProgress("/api/datasets/import/", body, sending);
    }).then(waitForImport).then(finished).catch(function (error) {
      hideProgress();
      setStatus("failed", "");
      if (error instanceof DxApi.ApiError) showApiError(error);
      else showError(error.field || null, error.message || String(error));
      submit.disabled = false;
    });
  }

  form.addEventListener("submit", onSubmit);
  // The button stays disabled until the library can seal: without it the form must not be sent at all.
  DxApi.sodiumReady().then(function () {
    submit.disabled = false;
  }, function (error) {
    showError(null, error.message);
  });
})();
