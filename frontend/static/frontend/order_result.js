// Open an order's result in the buyer's browser only: the browser makes an X25519 key pair, keeps the
// private half (localStorage, and a file the buyer can save), and asks for the result sealed to the public
// half. The web tier relays the sealed box; only this browser can open it, show it as a paged table with a
// search box, and save it as a CSV file (a Blob made here).
(function () {
  "use strict";
  var PAGE_SIZE = 50;
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
  var numbers = new Intl.NumberFormat(document.documentElement.lang || "en");
  var sodium = null;
  var memoryKey = null; // used only when localStorage is refused (private browsing, blocked storage)
  var busy = false;

  function integer(value) { return numbers.format(value); }

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
    if (!openable && box.dataset.state === "idle") setState("idle", gettext("The result can be opened once the order is fulfilled."));
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
      throw new Error(gettext("This browser's key cannot open the result: it was altered, or sealed to another key."));
    }
    try {
      return JSON.parse(new TextDecoder("utf-8").decode(plain));
    } catch (e) {
      throw new Error(gettext("The result opened but is not the expected JSON document."));
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

  function cellText(value) {
    return value === null || value === undefined ? "" : String(value);
  }

  // The opened result as a table of PAGE_SIZE rows a page, filtered by the search box; it never leaves
  // this browser except as the CSV file the buyer saves.
  var view = { result: null, rows: [], page: 0 };

  function pageCount() {
    return Math.max(1, Math.ceil(view.rows.length / PAGE_SIZE));
  }

  function drawPage() {
    var table = document.getElementById("result-table");
    var pages = pageCount();
    view.page = Math.min(Math.max(view.page, 0), pages - 1);
    var first = view.page * PAGE_SIZE;
    var shown = view.rows.slice(first, first + PAGE_SIZE);
    var body = document.createDocumentFragment();
    shown.forEach(function (row) {
      var tr = document.createElement("tr");
      row.forEach(function (value) {
        var cell = document.createElement("td");
        cell.textContent = cellText(value);
        tr.appendChild(cell);
      });
      body.appendChild(tr);
    });
    table.tBodies[0].replaceChildren(body);

    var total = view.result.rows.length;
    var matching = view.rows.length;
    var empty = document.getElementById("result-empty");
    empty.hidden = matching > 0;
    table.hidden = matching === 0;
    empty.textContent = total === 0
      ? gettext("The result has no rows: no record of yours matched the providers' data.")
      : gettext("No row matches the search.");
    var countText = matching === 0 ? "" : interpolate(
      ngettext("Rows %(first)s–%(last)s of %(count)s", "Rows %(first)s–%(last)s of %(count)s", matching),
      { first: integer(first + 1), last: integer(first + shown.length), count: integer(matching) }, true);
    if (matching !== total) {
      countText += " " + interpolate(ngettext("(%(count)s row in all)", "(%(count)s rows in all)", total),
                                     { count: integer(total) }, true);
    }
    document.getElementById("result-count").textContent = countText;
    document.getElementById("result-caption").textContent = interpolate(
      gettext("The result, page %(page)s of %(pages)s"), { page: integer(view.page + 1), pages: integer(pages) }, true);
    var pager = document.getElementById("result-pager");
    pager.hidden = pages <= 1;
    document.getElementById("result-page").textContent = interpolate(
      gettext("Page %(page)s of %(pages)s"), { page: integer(view.page + 1), pages: integer(pages) }, true);
    document.getElementById("result-prev").disabled = view.page === 0;
    document.getElementById("result-next").disabled = view.page >= pages - 1;
  }

  function applySearch() {
    var query = document.getElementById("result-search").value.trim().toLowerCase();
    view.rows = !query ? view.result.rows : view.result.rows.filter(function (row) {
      return row.some(function (value) { return cellText(value).toLowerCase().indexOf(query) >= 0; });
    });
    view.page = 0;
    drawPage();
  }

  function render(result) {
    var table = document.getElementById("result-table");
    var headRow = document.createElement("tr");
    result.columns.forEach(function (name) {
      var th = document.createElement("th");
      th.scope = "col";
      th.textContent = name;
      headRow.appendChild(th);
    });
    table.tHead.replaceChildren(headRow);
    view.result = result;
    var count = result.rows.length;
    document.getElementById("result-summary").textContent = interpolate(
      ngettext("Result: %(count)s row", "Result: %(count)s rows", count), { count: integer(count) }, true);
    document.getElementById("result-search").value = "";
    applySearch();
    document.getElementById("result-view").hidden = false;
  }

  // The whole table (not only the rows on screen or found) as a CSV file, made here and saved from here.
  function downloadCsv() {
    if (!view.result) return;
    var link = document.createElement("a");
    link.href = URL.createObjectURL(new Blob([csvOf(view.result)], { type: "text/csv;charset=utf-8" }));
    link.download = "order-" + orderId + "-result.csv";
    document.body.appendChild(link);
    link.click();
    link.remove();
    setTimeout(function () { URL.revokeObjectURL(link.href); }, 0);
  }

  function open(answer, key) {
    render(unseal(answer, key));
    setState("open", gettext("Opened in this browser; the marketplace never saw it in the clear."));
  }

  // Poll until the node has sealed the result to `key`, then open it.
  function waitAndOpen(key) {
    setState("sealing", gettext("Your node is sealing the result to this browser's key…"));
    return DxApi.poll(
      function () { return DxApi.get(resultUrl); },
      function (answer) { return answer.status === "ready" || answer.status === "failed"; }
    ).then(function (answer) {
      if (answer.status === "failed") throw new Error(answer.error || gettext("The result could not be sealed."));
      if (!matches(answer, key)) throw new Error(gettext("The result was sealed to another key; ask for it again."));
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
      if (!/^[0-9a-f]{64}$/.test(hex)) return showError(gettext("That file does not hold a result key (64 hex characters)."));
      run(function () {
        var key = { privateHex: hex, publicHex: publicHexOf(hex) };
        return DxApi.get(resultUrl).then(function (answer) {
          if (!matches(answer, key)) throw new Error(gettext("This key is not the one the result is sealed to."));
          storeKey(hex);
          if (answer.status === "sealing") return waitAndOpen(key);
          if (answer.status === "ready") return open(answer, key);
          throw new Error(answer.error || gettext("The result sealed to this key is not available."));
        });
      });
    });
  }

  openButton.addEventListener("click", function () { run(openResult); });
  document.getElementById("result-csv").addEventListener("click", downloadCsv);
  document.getElementById("result-search").addEventListener("input", applySearch);
  document.getElementById("result-prev").addEventListener("click", function () { view.page -= 1; drawPage(); });
  document.getElementById("result-next").addEventListener("click", function () { view.page += 1; drawPage(); });
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
