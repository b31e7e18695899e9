// Import a dataset without the web tier ever reading it: the browser checks the CSV, seals it to the
// organisation's node key (libsodium sealed box) and posts only the ciphertext; the node opens and imports
// it, and this page polls the dataset until the node says ready or failed.
(function () {
  "use strict";
  var MAX_BYTES = 50 * 1024 * 1024;
  var FLASH_KEY = "dx-import-flash";
  var NEWLINE = 10;

  var form = document.getElementById("import-form");
  showFlash();
  if (!form) return;
  var submit = document.getElementById("import-submit");
  var status = document.getElementById("import-status");
  var fields = {
    name: document.getElementById("import-name"),
    id_column: document.getElementById("import-id_column"),
    description: document.getElementById("import-description"),
    file: document.getElementById("import-file"),
  };

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

  // What can be checked here is checked here, so a bad file is refused before anything is sent.
  function checkedFile(idColumn) {
    var file = fields.file.files && fields.file.files[0];
    if (!file) return Promise.reject({ field: "file", message: "Choose a CSV file to import." });
    if (file.size === 0) return Promise.reject({ field: "file", message: "The file is empty." });
    if (file.size > MAX_BYTES) {
      var mb = (file.size / 1024 / 1024).toFixed(1);
      return Promise.reject({ field: "file", message: "The file is " + mb + " MB; the limit is 50 MB." });
    }
    return file.arrayBuffer().then(function (buffer) {
      var bytes = new Uint8Array(buffer);
      var cells;
      try { cells = headerCells(bytes); } catch (e) {
        throw { field: "file", message: "The file is not UTF-8 text." };
      }
      if (cells.every(function (cell) { return !cell; })) {
        throw { field: "file", message: "The file is empty: a header row is required." };
      }
      if (cells.indexOf(idColumn) < 0) {
        throw { field: "id_column", message: "The id column '" + idColumn + "' is not in the header (" +
          cells.join(", ") + ")." };
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
        throw { message: "Your organisation's node has no sealing key yet, so nothing can be sealed to it." };
      }
      return hex;
    });
  }

  function waitForImport(dataset) {
    setStatus("importing", "Importing on your node…");
    return DxApi.poll(
      function () { return DxApi.get("/api/datasets/" + dataset.id + "/"); },
      function (answer) { return answer.status === "ready" || answer.status === "failed"; }
    );
  }

  function rowsOf(answer) {
    var rows = answer.row_count !== undefined ? answer.row_count : answer.table && answer.table.row_count;
    return typeof rows === "number" ? rows.toLocaleString("en-US") + " rows" : "its rows";
  }

  function finished(answer) {
    if (answer.status === "failed") {
      setStatus("failed", "");
      showError("file", answer.error || "Your node could not import the file.");
      submit.disabled = false;
      return;
    }
    var text = "Imported " + answer.name + ": " + rowsOf(answer) + " into your node's vault.";
    setStatus("ready", text);
    // Reload so the table and the product form list the new dataset; the message survives the reload.
    try {
      sessionStorage.setItem(FLASH_KEY, text);
      window.location.assign(form.dataset.doneUrl);
    } catch (e) { /* no sessionStorage: the status line already says it */ }
  }

  function onSubmit(event) {
    event.preventDefault();
    clearErrors();
    var name = fields.name.value.trim();
    var idColumn = fields.id_column.value.trim();
    if (!name) return showError("name", "Give the dataset a name.");
    if (!idColumn) return showError("id_column", "Name the column that holds the record ids.");
    submit.disabled = true;
    setStatus("sealing", "Sealing the file in this browser…");
    Promise.all([checkedFile(idColumn), nodeKey(), DxApi.sodiumReady()]).then(function (ready) {
      var sodium = ready[2];
      var sealed = sodium.crypto_box_seal(ready[0], sodium.from_hex(ready[1]));
      setStatus("uploading", "Sending the sealed file…");
      return DxApi.post("/api/datasets/import/", {
        name: name,
        id_column: idColumn,
        description: fields.description.value,
        sealed_file: sodium.to_base64(sealed, sodium.base64_variants.ORIGINAL),
      });
    }).then(waitForImport).then(finished).catch(function (error) {
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
