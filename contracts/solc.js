#!/usr/bin/env node
// Minimal solc CLI over the npm solc-js package, for py-solc-x's `solc_binary=` and Slither's `--solc`.
// It answers only what they ask: `--version`, and `--standard-json` with the input on stdin (crytic-compile
// adds `--allow-paths <dir>`, which is accepted and ignored: files resolve only under the bases below).
// Plain `solcjs --standard-json` prints a line before the JSON, which py-solc-x cannot parse.
"use strict";
const path = require("path");
const fs = require("fs");
const solc = require("solc");

const root = path.resolve(__dirname, "..");
const args = process.argv.slice(2);

// Library imports live in node_modules; py-solc-x gives bare file names ("DataRegistry.sol", so contracts/);
// crytic-compile gives paths from the directory it runs in ("contracts/DataRegistry.sol"), as solc's base path.
function findImport(importPath) {
  for (const base of [path.join(root, "node_modules"), path.join(root, "contracts"), process.cwd()]) {
    const candidate = path.resolve(base, importPath);
    if (candidate.startsWith(base + path.sep) && fs.existsSync(candidate)) {
      return { contents: fs.readFileSync(candidate, "utf8") };
    }
  }
  return { error: "File not found: " + importPath };
}

// process.stdout.write to a pipe is queued when the reader is slower, and process.exit drops the queue:
// output past the pipe buffer (64-128 KiB) was lost. Write synchronously until every byte is out.
function writeAll(text) {
  const buffer = Buffer.from(text, "utf8");
  let offset = 0;
  while (offset < buffer.length) {
    try {
      offset += fs.writeSync(1, buffer, offset, buffer.length - offset);
    } catch (error) {
      if (error.code !== "EAGAIN") throw error;
      Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 5); // non-blocking pipe is full: wait
    }
  }
}

if (args.includes("--version")) {
  writeAll("solc, the solidity compiler commandline interface\nVersion: " + solc.version() + "\n");
  process.exit(0);
}
if (args.includes("--standard-json")) {
  const input = fs.readFileSync(0, "utf8");
  writeAll(solc.compile(input, { import: findImport }));
  process.exit(0);
}
process.stderr.write("usage: solc.js --version | --standard-json [--allow-paths DIR] < input.json\n");
process.exit(2);
