// Open an order's result in the buyer's browser only: the browser makes an X25519 key pair, keeps the
// private half (localStorage, and a file the buyer can save), and asks for the result sealed to the public
// half. The web tier relays the sealed box; only this browser can open it, render it and export it as CSV.
(function () {
  "use strict";
  var ROWS_SHOWN = 500;
  var OPENABLE = ["fulfilled", "fulfilling"];

  var box = document.getElementById("order-result");
  if (!box) return;
  var orderId = box.dataset.order;
  var resultUrl = "/api/orders/" + orderId + "/result/";
  var storageKey = "dx-result-key:" + orderId;
  var openButton = document.getElementById("result-open");
  var keyDownload = document.getElementById("result-key-download");
  var keyFile = document.getElementById("result-key-file");
  var statusLine = document.getElementById("result-status");
  var errorLine = document.getElementById("result-error");
  var sodium = null;
  var memoryKey = null; // used only when localStorage is refused (private browsing, blocked storage)
  var busy = false;

  function setState(state, text) {
    box.dataset.state = state;
    if (statusLine.textContent !== (text || "")) statusLine.textContent = text || "";
  }

  function showError(message) {
    errorLine.textContent = message;
    errorLine.hidden = !message;
  }

  // The order block above is refreshed by htmx; the button follows its status.
  function orderStatus() {
    var live = document.getElementById("order-live");
    return live ? live.dataset.status : "";
  }

  function syncButton() {
    var openable = OPENABLE.indexOf(orderStatus()) >= 0;
    openButton.disabled = !sodium || busy || !openable;
    if (!openable && box.dataset.state === "idle") setState("idle", "The result can be opened once the order is fulfilled.");
    else if (openable && box.dataset.state === "idle") setState("idle", "");
  }

  function storedKey() {
    try { return localStorage.getItem(storageKey) || memoryKey; } catch (e) { return memoryKey; }
  }

  function storeKey(privateHex) {
    memoryKey = privateHex;
    try { localStorage.setItem(storageKey, privateHex); } catch (e) { /* kept in memory; the file is the backup */ }
    var blob = new Blob([privateHex + "\n"], { type: "text/plain" });
    if (keyDownload.href) URL.revokeObjectURL(keyDownload.href);
    keyDownload.href = URL.createObjectURL(blob);
    keyDownload.download = "dx-result-key-" + orderId + ".txt";
    keyDownload.parentNode.hidden = false; // the wrapper: .btn's display would override the link's own hidden
  }

  function publicHexOf(privateHex) {
    return sodium.to_hex(sodium.crypto_scalarmult_base(sodium.from_hex(privateHex)));
  }

  function newKey() {
    var pair = sodium.crypto_box_keypair();
    var privateHex = sodium.to_hex(pair.privateKey);
    return { privateHex: privateHex, publicHex: sodium.to_hex(pair.publicKey) };
  }

  function matches(answer, key) {
    return key && answer.public_key && answer.public_key.toLowerCase() === key.publicHex;
  }

  // The sealed box → the JSON document {columns, rows} the node sealed.
  function unseal(answer, key) {
    var sealed = sodium.from_base64(answer.sealed, sodium.base64_variants.ORIGINAL);
    var plain;
    try {
      plain = sodium.crypto_box_seal_open(sealed, sodium.from_hex(key.publicHex), sodium.from_hex(key.privateHex));
    } catch (e) {
      throw new Error("This browser's key cannot open the result: it was altered, or sealed to another key.");
    }
    try {
      return JSON.parse(new TextDecoder("utf-8").decode(plain));
    } catch (e) {
      throw new Error("The result opened but is not the expected JSON document.");
    }
  }

  function csvCell(value) {
    var text = value === null || value === undefined ? "" : String(value);
    return /[",\r\n]/.test(text) ? "\"" + text.replace(/"/g, "\"\"") + "\"" : text;
  }

  function csvOf(result) {
    var lines = [result.columns].concat(result.rows).map(function (row) { return row.map(csvCell).join(","); });
    return lines.join("\r\n") + "\r\n";
  }

  function render(result) {
    var table = document.getElementById("result-table");
    var headRow = document.createElement("tr");
    result.columns.forEach(function (name) {
      var th = document.createElement("th");
      th.textContent = name;
      headRow.appendChild(th);
    });
    table.tHead.replaceChildren(headRow);
    var body = document.createDocumentFragment();
    result.rows.slice(0, ROWS_SHOWN).forEach(function (row) {
      var tr = document.createElement("tr");
      row.forEach(function (value) {
        var td = document.createElement("td");
        td.textContent = value === null || value === undefined ? "" : String(value);
        tr.appendChild(td);
      });
      body.appendChild(tr);
    });
    table.tBodies[0].replaceChildren(body);

    var count = result.rows.length;
    document.getElementById("result-summary").textContent =
      "Result: " + count.toLocaleString("en-US") + " row" + (count === 1 ? "" : "s");
    var more = document.getElementById("result-more");
    more.hidden = count <= ROWS_SHOWN;
    more.textContent = "Showing the first " + ROWS_SHOWN + " rows; download the CSV for all " +
      count.toLocaleString("en-US") + ".";
    var csv = document.getElementById("result-csv");
    if (csv.href) URL.revokeObjectURL(csv.href);
    csv.href = URL.createObjectURL(new Blob([csvOf(result)], { type: "text/csv;charset=utf-8" }));
    csv.download = "order-" + orderId + "-result.csv";
    document.getElementById("result-view").hidden = false;
  }

  function open(answer, key) {
    render(unseal(answer, key));
    setState("open", "Opened in this browser; the marketplace never saw it in the clear.");
  }

  // Poll until the node has sealed the result to `key`, then open it.
  function waitAndOpen(key) {
    setState("sealing", "Your node is sealing the result to this browser's key…");
    return DxApi.poll(
      function () { return DxApi.get(resultUrl); },
      function (answer) { return answer.status === "ready" || answer.status === "failed"; }
    ).then(function (answer) {
      if (answer.status === "failed") throw new Error(answer.error || "The result could not be sealed.");
      if (!matches(answer, key)) throw new Error("The result was sealed to another key; ask for it again.");
      open(answer, key);
    });
  }

  // Use the key this browser already holds when the result is (being) sealed to it; otherwise make a new one.
  function openResult() {
    var held = storedKey();
    var key = held ? { privateHex: held, publicHex: publicHexOf(held) } : null;
    return DxApi.get(resultUrl).then(function (answer) {
      if (matches(answer, key) && answer.status === "ready") return open(answer, key);
      if (matches(answer, key) && answer.status === "sealing") return waitAndOpen(key);
      var fresh = newKey();
      return DxApi.post(resultUrl, { public_key: fresh.publicHex }).then(function () {
        storeKey(fresh.privateHex);
        return waitAndOpen(fresh);
      });
    });
  }

  function run(action) {
    busy = true;
    showError("");
    syncButton();
    return action().catch(function (error) {
      setState("failed", "");
      showError(error.message || String(error));
    }).then(function () {
      busy = false;
      syncButton();
    });
  }

  // On load, a result already sealed to this browser's key opens (or keeps being awaited) by itself.
  function resume() {
    var held = storedKey();
    if (!held) return;
    storeKey(held);
    var key = { privateHex: held, publicHex: publicHexOf(held) };
    run(function () {
      return DxApi.get(resultUrl).then(function (answer) {
        if (!matches(answer, key)) return;
        if (answer.status === "ready") return open(answer, key);
        if (answer.status === "sealing") return waitAndOpen(key);
      });
    });
  }

  // A key file saved earlier (on this or another device) replaces the one this browser holds.
  function useKeyFile() {
    var file = keyFile.files && keyFile.files[0];
    if (!file || !sodium) return;
    file.text().then(function (text) {
      var hex = text.trim().toLowerCase();
      keyFile.value = "";
      if (!/^[0-9a-f]{64}$/.test(hex)) return showError("That file does not hold a result key (64 hex characters).");
      run(function () {
        var key = { privateHex: hex, publicHex: publicHexOf(hex) };
        return DxApi.get(resultUrl).then(function (answer) {
          if (!matches(answer, key)) throw new Error("This key is not the one the result is sealed to.");
          storeKey(hex);
          if (answer.status === "sealing") return waitAndOpen(key);
          if (answer.status === "ready") return open(answer, key);
          throw new Error(answer.error || "The result sealed to this key is not available.");
        });
      });
    });
  }

  openButton.addEventListener("click", function () { run(openResult); });
  keyFile.addEventListener("change", useKeyFile);
  // htmx swaps the whole #order-live block (outerHTML), so watching its parent's children is enough.
  var live = document.getElementById("order-live");
  if (live) new MutationObserver(syncButton).observe(live.parentNode, { childList: true });
  syncButton();
  DxApi.sodiumReady().then(function (ready) {
    sodium = ready;
    syncButton();
    resume();
  }, function (error) {
    showError(error.message);
  });
})();
