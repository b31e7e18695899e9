// Verification in the browser, so that a reader need not take the server's word "verified".
//
// For an entry the page shows, this recomputes with WebCrypto SHA-256, exactly as audit/encoding.py and
// audit/merkle.py do: the entry's hash from its recorded fields, its Merkle leaf (RFC 6962: 0x00 prefix), and
// the path from the leaf to its batch's root along the public proof (GET /api/audit/proofs/<entry hash>/;
// interior nodes 0x01; RFC 9162's algorithm, which also rejects a path of the wrong length). It then reads
// the root anchored for the batch from the chain itself — an eth_call of AuditAnchor.rootOf(batchId) sent
// from this browser to the public JSON-RPC endpoint — and compares. When this browser cannot reach the
// chain (CORS, offline), it says that it checked the path against the root the server reported only.
// The payload's digest is taken as recorded: its JSON may hold floats, whose text differs between Python and
// JavaScript; the server's verification and `python -m audit.verifier` recompute it.
//
// No library: the ABI encoding of the call is written out below. Runs in browsers and in Node 20 (tests).
(function (root) {
  "use strict";

  var LEAF_PREFIX = 0x00; // audit/merkle.py _LEAF_PREFIX
  var NODE_PREFIX = 0x01; // audit/merkle.py _NODE_PREFIX
  // The first 4 bytes of keccak256("rootOf(uint64)"); tests check it against web3's encoding of the call.
  var ROOT_OF_SELECTOR = "0x9d7384d9";
  var ENTRY_VERSION = 1; // the "v" of audit/encoding.py's hashed fields
  var HASHED_FIELDS = ["seq", "created_at", "actor", "action", "subject", "parties", "payload_digest", "prev_hash"];
  var RPC_TIMEOUT_MS = 8000;

  // Messages in the page's language (Django's JavaScript catalogue, /jsi18n/); as written under Node (tests).
  // Named `gettext` so that makemessages finds the strings.
  var gettext = typeof root.gettext === "function" ? root.gettext : function (text) { return text; };
  function fmt(text, values) {
    if (typeof root.interpolate === "function") return root.interpolate(text, values, true);
    return text.replace(/%\((\w+)\)s/g, function (match, name) { return String(values[name]); });
  }

  // --- Encoding, as audit/encoding.py's canonical_json: sorted keys, no whitespace, UTF-8, no ASCII escaping.
  function canonicalJson(value) {
    if (value === null || typeof value === "boolean" || typeof value === "string") return JSON.stringify(value);
    if (typeof value === "number") {
      if (!Number.isInteger(value)) throw new Error(gettext("only integers are hashed in an entry's fields"));
      return String(value);
    }
    if (Array.isArray(value)) return "[" + value.map(canonicalJson).join(",") + "]";
    // Keys compared by code point, as Python sorts them (UTF-16 order differs only beyond the BMP).
    var keys = Object.keys(value).sort(function (a, b) {
      var x = Array.from(a), y = Array.from(b);
      for (var i = 0; i < Math.min(x.length, y.length); i++) {
        var d = x[i].codePointAt(0) - y[i].codePointAt(0);
        if (d) return d;
      }
      return x.length - y.length;
    });
    return "{" + keys.map(function (key) { return JSON.stringify(key) + ":" + canonicalJson(value[key]); }).join(",") + "}";
  }

  function utf8(text) { return new TextEncoder().encode(text); }

  function concat(parts) {
    var length = parts.reduce(function (sum, part) { return sum + part.length; }, 0);
    var out = new Uint8Array(length), offset = 0;
    parts.forEach(function (part) { out.set(part, offset); offset += part.length; });
    return out;
  }

  function toHex(bytes) {
    return Array.from(bytes, function (b) { return b.toString(16).padStart(2, "0"); }).join("");
  }

  function fromHex(text) {
    var clean = String(text).replace(/^0x/, "");
    if (clean.length % 2 || /[^0-9a-fA-F]/.test(clean)) throw new Error(fmt(gettext("not hex: %(text)s"), { text: text }));
    var out = new Uint8Array(clean.length / 2);
    for (var i = 0; i < out.length; i++) out[i] = parseInt(clean.substr(i * 2, 2), 16);
    return out;
  }

  function subtle() {
    var api = root.crypto && root.crypto.subtle;
    if (!api) throw new Error(gettext("this browser offers no WebCrypto here (it needs HTTPS or localhost)"));
    return api;
  }

  function sha256(bytes) {
    return subtle().digest("SHA-256", bytes).then(function (digest) { return new Uint8Array(digest); });
  }

  function hashedFields(fields) {
    var out = { v: ENTRY_VERSION };
    HASHED_FIELDS.forEach(function (name) { out[name] = fields[name]; });
    return out;
  }

  function entryHash(fields) { // hex, as audit.encoding.entry_hash_compute
    return sha256(utf8(canonicalJson(hashedFields(fields)))).then(toHex);
  }

  function leafHash(fields) { // H(0x00 || entry_leaf_data)
    var data = hashedFields(fields);
    data.entry_hash = fields.entry_hash;
    return sha256(concat([Uint8Array.of(LEAF_PREFIX), utf8(canonicalJson(data))]));
  }

  function nodeHash(left, right) { return sha256(concat([Uint8Array.of(NODE_PREFIX), left, right])); }

  function equalBytes(a, b) {
    return a.length === b.length && a.every(function (value, i) { return value === b[i]; });
  }

  // RFC 9162 2.1.3.2, as audit.merkle.merkle_verify: the root `proof` leads to from `leaf` at `index` of a
  // tree of `size` leaves, or null when the path cannot belong to that position.
  async function rootFromProof(leaf, index, size, proof) {
    if (!(index >= 0 && index < size) || leaf.length !== 32) return null;
    var fn = index, sn = size - 1, result = leaf;
    for (var i = 0; i < proof.length; i++) {
      var sibling = proof[i];
      if (sn === 0 || sibling.length !== 32) return null;
      if (fn % 2 === 1 || fn === sn) {
        result = await nodeHash(sibling, result);
        if (fn % 2 === 0) {
          while (fn !== 0 && fn % 2 === 0) { fn = Math.floor(fn / 2); sn = Math.floor(sn / 2); }
        }
      } else {
        result = await nodeHash(result, sibling);
      }
      fn = Math.floor(fn / 2); sn = Math.floor(sn / 2);
    }
    return sn === 0 ? result : null;
  }

  // --- The chain, read from this browser.
  function rootOfCallData(batchId) { // selector ‖ uint64 batchId left-padded to 32 bytes
    return ROOT_OF_SELECTOR + BigInt(batchId).toString(16).padStart(64, "0");
  }

  function decodeRootOf(result) { // (bytes32 root, uint64 count, uint64 anchoredAt)
    var data = String(result || "").replace(/^0x/, "");
    if (data.length < 192) throw new Error(fmt(gettext("AuditAnchor answered %(bytes)s bytes, not 96"), { bytes: data.length / 2 }));
    return { root: data.slice(0, 64).toLowerCase(), count: Number(BigInt("0x" + data.slice(64, 128))),
             anchoredAt: Number(BigInt("0x" + data.slice(128, 192))) };
  }

  async function rpc(url, method, params) {
    var controller = typeof AbortController === "undefined" ? null : new AbortController();
    var timer = controller && setTimeout(function () { controller.abort(); }, RPC_TIMEOUT_MS);
    try {
      var response = await root.fetch(url, {
        method: "POST", headers: { "Content-Type": "application/json" }, credentials: "omit",
        body: JSON.stringify({ jsonrpc: "2.0", id: 1, method: method, params: params }),
        signal: controller ? controller.signal : undefined,
      });
      if (!response.ok) throw new Error(fmt(gettext("the node answered HTTP %(status)s"), { status: response.status }));
      var body = await response.json();
      if (body.error) throw new Error(method + ": " + (body.error.message || JSON.stringify(body.error)));
      return body.result;
    } finally {
      if (timer) clearTimeout(timer);
    }
  }

  async function readAnchor(rpcUrl, contract, batchId) {
    var chainId = Number(BigInt(await rpc(rpcUrl, "eth_chainId", [])));
    var result = await rpc(rpcUrl, "eth_call", [{ to: contract, data: rootOfCallData(batchId) }, "latest"]);
    return Object.assign({ chainId: chainId }, decodeRootOf(result));
  }

  // --- One entry, end to end. `proof` is the public proof's JSON; `readChain(contract, batch)` reads the
  // anchor (readAnchor against the page's RPC URL by default). Resolves to {status, summary, lines}:
  // "verified" (against the root this browser read on chain), "server-root" (the chain could not be read
  // here: checked against the root the server reported), "pending" (not anchored yet), "failed".
  async function verifyEntry(fields, proof, readChain) {
    var lines = [];
    var recomputed = await entryHash(fields);
    if (recomputed !== String(fields.entry_hash).toLowerCase()) {
      return { status: "failed", summary: gettext("Its recorded fields do not give its hash (edited)."),
               lines: [fmt(gettext("recomputed %(recomputed)s, recorded %(recorded)s"),
                           { recomputed: recomputed, recorded: fields.entry_hash })] };
    }
    lines.push(fmt(gettext("Entry hash recomputed from its fields: %(hash)s"), { hash: recomputed }));
    var leaf = await leafHash(fields);
    lines.push(fmt(gettext("Leaf (0x00 ‖ fields): %(leaf)s, index %(index)s"), { leaf: toHex(leaf), index: proof.leaf_index }));
    var path = proof.proof.map(fromHex);
    var anchor = null, chainProblem = "";
    try {
      anchor = await readChain(proof.anchor_contract, proof.batch);
    } catch (error) {
      chainProblem = (error && error.message) || String(error);
    }
    if (anchor) {
      if (anchor.chainId !== proof.chain_id) {
        return { status: "failed", summary: fmt(gettext("The RPC endpoint serves chain %(served)s, the proof names chain %(named)s."),
                                                { served: anchor.chainId, named: proof.chain_id }), lines: lines };
      }
      if (/^0+$/.test(anchor.root)) {
        return { status: "pending", summary: fmt(gettext("Batch %(batch)s is not anchored on chain yet."), { batch: proof.batch }),
                 lines: lines };
      }
      var reached = await rootFromProof(leaf, proof.leaf_index, anchor.count, path);
      lines.push(fmt(gettext("Root read by this browser from chain %(chain)s, AuditAnchor %(contract)s.rootOf(%(batch)s): %(root)s (%(count)s entries)"), { chain: anchor.chainId, contract: proof.anchor_contract,
                                                           batch: proof.batch, root: anchor.root, count: anchor.count }));
      if (reached && toHex(reached) === anchor.root) {
        return { status: "verified", summary: gettext("Verified in this browser against the root on chain."), lines: lines };
      }
      return { status: "failed", summary: gettext("Its Merkle path does not lead to the root anchored on chain."), lines: lines };
    }
    var serverRoot = await rootFromProof(leaf, proof.leaf_index, proof.size, path);
    lines.push(fmt(gettext("This browser could not read the chain itself (%(problem)s)."), { problem: chainProblem }));
    if (serverRoot && toHex(serverRoot) === String(proof.root).toLowerCase()) {
      lines.push(fmt(gettext("Check the root yourself: rootOf(%(batch)s) at %(contract)s on chain %(chain)s should be %(root)s."),
                     { batch: proof.batch, contract: proof.anchor_contract, chain: proof.chain_id, root: proof.root }));
      return { status: "server-root", summary: gettext("Path checked in this browser against the root the server reported only; the chain was not read here."), lines: lines };
    }
    return { status: "failed", summary: gettext("Its Merkle path does not lead to the root the server reported."), lines: lines };
  }

  var api = {
    LEAF_PREFIX: LEAF_PREFIX, NODE_PREFIX: NODE_PREFIX, ROOT_OF_SELECTOR: ROOT_OF_SELECTOR,
    canonicalJson: canonicalJson, entryHash: entryHash, leafHash: leafHash, rootFromProof: rootFromProof,
    rootOfCallData: rootOfCallData, decodeRootOf: decodeRootOf, readAnchor: readAnchor, verifyEntry: verifyEntry,
    toHex: toHex, fromHex: fromHex,
  };
  root.AuditVerify = api;
  if (typeof module !== "undefined" && module.exports) module.exports = api;

  // --- The page: buttons with data-browser-verify (an entry) or data-batch-check (a batch's root).
  if (typeof document === "undefined") return;

  function config() {
    var source = document.getElementById("audit-browser-chain");
    return source ? JSON.parse(source.textContent) : {};
  }

  function show(target, status, summary, lines) {
    target.textContent = "";
    target.setAttribute("data-browser-status", status);
    var badge = document.createElement("span");
    var names = { verified: gettext("Verified"), "server-root": gettext("Server root only"), pending: gettext("Pending"), failed: gettext("Failed"),
                  unavailable: gettext("Not checked"), checking: gettext("Checking…") };
    badge.className = "badge badge-" + ({ verified: "verified", failed: "tampered", "server-root": "pending",
                                          pending: "pending", unavailable: "pending", checking: "pending" }[status]);
    badge.textContent = names[status] || status;
    var text = document.createElement("span");
    text.className = "small";
    text.textContent = " " + summary;
    target.append(badge, text);
    if (lines && lines.length) {
      var details = document.createElement("details");
      var label = document.createElement("summary");
      label.className = "small";
      label.textContent = gettext("What this browser computed");
      var list = document.createElement("ul");
      list.className = "small browser-lines";
      lines.forEach(function (line) {
        var item = document.createElement("li");
        item.textContent = line;
        list.append(item);
      });
      details.append(label, list);
      target.append(details);
    }
  }

  async function checkEntry(button) {
    var target = document.getElementById(button.getAttribute("data-target"));
    var settings = config();
    show(target, "checking", gettext("Recomputing in this browser…"));
    try {
      var fields = JSON.parse(button.getAttribute("data-entry"));
      var response = await root.fetch(settings.proof_url + fields.entry_hash + "/", { headers: { Accept: "application/json" } });
      if (response.status === 404) {
        show(target, "unavailable", gettext("No public proof: the entry is not sealed into a batch yet."));
        return;
      }
      if (!response.ok) throw new Error(fmt(gettext("the proof could not be fetched (HTTP %(status)s)"), { status: response.status }));
      var proof = await response.json();
      var result = await verifyEntry(fields, proof, function (contract, batch) {
        if (!settings.rpc_url) throw new Error(gettext("the page names no RPC endpoint"));
        return readAnchor(settings.rpc_url, contract, batch);
      });
      show(target, result.status, result.summary, result.lines);
    } catch (error) {
      show(target, "unavailable", fmt(gettext("Not checked: %(problem)s"), { problem: (error && error.message) || error }));
    }
  }

  async function checkBatch(button) {
    var target = document.getElementById(button.getAttribute("data-target"));
    var settings = config();
    show(target, "checking", gettext("Reading the chain…"));
    try {
      if (!settings.rpc_url || !settings.anchor_contract) throw new Error(gettext("the page names no chain to read"));
      var anchor = await readAnchor(settings.rpc_url, settings.anchor_contract, button.getAttribute("data-batch"));
      var root_ = button.getAttribute("data-root").toLowerCase(), size = Number(button.getAttribute("data-size"));
      var lines = [fmt(gettext("rootOf(%(batch)s) on chain %(chain)s: %(root)s (%(count)s entries)"),
                       { batch: button.getAttribute("data-batch"), chain: anchor.chainId, root: anchor.root,
                         count: anchor.count })];
      if (/^0+$/.test(anchor.root)) show(target, "pending", gettext("Not anchored on chain yet."), lines);
      else if (anchor.root === root_ && anchor.count === size) show(target, "verified", gettext("The chain holds this root."), lines);
      else show(target, "failed", gettext("The chain holds another root or size."), lines);
    } catch (error) {
      show(target, "unavailable", fmt(gettext("This browser could not read the chain: %(problem)s"),
                                      { problem: (error && error.message) || error }));
    }
  }

  document.addEventListener("click", function (event) {
    var entry = event.target.closest && event.target.closest("[data-browser-verify]");
    if (entry) { event.preventDefault(); checkEntry(entry); return; }
    var batch = event.target.closest && event.target.closest("[data-batch-check]");
    if (batch) { event.preventDefault(); checkBatch(batch); }
  });
})(typeof globalThis !== "undefined" ? globalThis : this);
