#!/usr/bin/env node
// Minimal solc CLI over the npm solc-js package, for py-solc-x's `solc_binary=`.
// It answers only what py-solc-x asks: `--version` and `--standard-json` (input on stdin).
// Plain `solcjs --standard-json` prints a line before the JSON, which py-solc-x cannot parse.
"use strict";
const path = require("path");
const fs = require("fs");
const solc = require("solc");

const root = path.resolve(__dirname, "..");
const args = process.argv.slice(2);

function findImport(importPath) {
  for (const base of [path.join(root, "node_modules"), path.join(root, "contracts")]) {
    const candidate = path.join(base, importPath);
    if (candidate.startsWith(base) && fs.existsSync(candidate)) {
      return { contents: fs.readFileSync(candidate, "utf8") };
    }
  }
  return { error: "File not found: " + importPath };
}

if (args.includes("--version")) {
  process.stdout.write("solc, the solidity compiler commandline interface\nVersion: " + solc.version() + "\n");
  process.exit(0);
}
if (args.includes("--standard-json")) {
  const input = fs.readFileSync(0, "utf8");
  process.stdout.write(solc.compile(input, { import: findImport }));
  process.exit(0);
}
process.stderr.write("usage: solc.js --version | --standard-json < input.json\n");
process.exit(2);
