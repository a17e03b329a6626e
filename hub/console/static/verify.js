// In-browser verification of the audit log: signed checkpoints (C2SP signed-note, Ed25519),
// witness cosignatures (C2SP tlog-cosignature), inclusion and consistency proofs (RFC 9162)
// computed from the tlog-tiles API and checked with WebCrypto. Nothing here trusts the server
// that serves the page except for the verifier keys, which the page shows and the auditor may
// replace with a pinned copy (localStorage "govhub.vkeys", one vkey a line).
// No inline script anywhere: the Content-Security-Policy allows scripts from this origin only.
"use strict";

(function () {
  const TILE_HEIGHT = 8;
  const TILE_WIDTH = 256;
  const HASH = 32;
  const enc = new TextEncoder();

  function b64decode(text) {
    const bin = atob(text);
    const out = new Uint8Array(bin.length);
    for (let i = 0; i < bin.length; i++) out[i] = bin.charCodeAt(i);
    return out;
  }
  function b64encode(bytes) {
    let bin = "";
    for (const b of bytes) bin += String.fromCharCode(b);
    return btoa(bin);
  }
  function concat(...parts) {
    const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
    let at = 0;
    for (const p of parts) { out.set(p, at); at += p.length; }
    return out;
  }
  function equal(a, b) {
    if (a.length !== b.length) return false;
    let diff = 0;
    for (let i = 0; i < a.length; i++) diff |= a[i] ^ b[i];
    return diff === 0;
  }
  async function sha256(bytes) {
    return new Uint8Array(await crypto.subtle.digest("SHA-256", bytes));
  }
  const leafHash = (leaf) => sha256(concat(Uint8Array.of(0), leaf));
  const nodeHash = (l, r) => sha256(concat(Uint8Array.of(1), l, r));

  // --- signed notes --------------------------------------------------------------------
  async function parseVkey(vkey) {
    // The base64 key material may itself hold "+": split at the first two only.
    const first = vkey.indexOf("+");
    const second = vkey.indexOf("+", first + 1);
    if (first < 1 || second < 0) throw new Error("malformed verifier key");
    const name = vkey.slice(0, first);
    const hexId = vkey.slice(first + 1, second);
    const material = vkey.slice(second + 1);
    const raw = b64decode(material);
    const alg = raw[0];
    const pub = raw.slice(1);
    if ((alg !== 1 && alg !== 4) || pub.length !== 32) throw new Error("verifier key " + name + " is not an Ed25519 note key");
    const id = (await sha256(concat(enc.encode(name + "\n"), Uint8Array.of(alg), pub))).slice(0, 4);
    const hex = Array.from(id, (b) => b.toString(16).padStart(2, "0")).join("");
    if (hex !== hexId) throw new Error("verifier key " + name + " has a wrong key id");
    const key = await crypto.subtle.importKey("raw", pub, { name: "Ed25519" }, false, ["verify"]);
    return { name, id, alg, key, hex };
  }

  function parseNote(note) {
    const split = note.indexOf("\n\n");
    if (split < 0) throw new Error("the note has no signature block");
    const text = note.slice(0, split + 1);
    const sigs = [];
    for (const line of note.slice(split + 2).split("\n")) {
      if (!line) continue;
      const m = /^\u2014 (\S+) (\S+)$/.exec(line);
      if (!m) throw new Error("malformed signature line");
      const raw = b64decode(m[2]);
      sigs.push({ name: m[1], id: raw.slice(0, 4), sig: raw.slice(4) });
    }
    return { text, sigs };
  }

  // Which of `verifiers` signed `note` validly; a bad signature from a known key fails.
  async function verifyNote(note, verifiers) {
    const parsed = parseNote(note);
    const good = [];
    for (const s of parsed.sigs) {
      const v = verifiers.find((k) => k.name === s.name && equal(k.id, s.id));
      if (!v) continue;
      let message = enc.encode(parsed.text);
      let sig = s.sig;
      let timestamp = null;
      if (v.alg === 4) {
        if (sig.length !== 72) throw new Error("cosignature by " + v.name + " is not 72 bytes");
        timestamp = Number(new DataView(sig.buffer, sig.byteOffset, 8).getBigUint64(0));
        message = enc.encode("cosignature/v1\ntime " + timestamp + "\n" + parsed.text);
        sig = sig.slice(8);
      }
      const ok = await crypto.subtle.verify({ name: "Ed25519" }, v.key, sig, message);
      if (!ok) throw new Error("the signature by " + v.name + "+" + v.hex + " does not verify");
      good.push({ name: v.name, timestamp });
    }
    return { text: parsed.text, good };
  }

  function parseCheckpoint(text) {
    const lines = text.slice(0, -1).split("\n");
    if (lines.length < 3) throw new Error("a checkpoint has origin, size and root lines");
    if (!/^(0|[1-9][0-9]*)$/.test(lines[1])) throw new Error("bad tree size");
    const root = b64decode(lines[2]);
    if (root.length !== HASH) throw new Error("bad root hash");
    return { origin: lines[0], size: Number(lines[1]), root };
  }

  // --- tiles -------------------------------------------------------------------------
  function encodeIndex(n) {
    const groups = [String(n % 1000).padStart(3, "0")];
    n = Math.floor(n / 1000);
    while (n > 0) { groups.push("x" + String(n % 1000).padStart(3, "0")); n = Math.floor(n / 1000); }
    return groups.reverse().join("/");
  }

  class Tiles {
    constructor(base, size) { this.base = base; this.size = size; this.cache = new Map(); this.fetched = 0; }
    async get(level, index, width) {
      const path = "tile/" + level + "/" + encodeIndex(index) + (width < TILE_WIDTH ? ".p/" + width : "");
      if (!this.cache.has(path)) {
        this.cache.set(path, (async () => {
          const r = await fetch(this.base + "/" + path, { cache: "no-store" });
          if (!r.ok) throw new Error(path + ": HTTP " + r.status);
          this.fetched++;
          return new Uint8Array(await r.arrayBuffer());
        })());
      }
      return this.cache.get(path);
    }
    // The hash of the complete subtree (level, index) in the tree of this.size leaves.
    async hashAt(level, index) {
      if (level % TILE_HEIGHT === 0) {
        const tileLevel = level / TILE_HEIGHT;
        const count = Math.floor(this.size / 2 ** level);
        const tileIndex = Math.floor(index / TILE_WIDTH);
        const width = Math.min(TILE_WIDTH, count - tileIndex * TILE_WIDTH);
        const data = await this.get(tileLevel, tileIndex, width);
        if (data.length !== width * HASH) throw new Error("tile " + tileLevel + "/" + tileIndex + " has a wrong length");
        const at = (index % TILE_WIDTH) * HASH;
        return data.slice(at, at + HASH);
      }
      return nodeHash(await this.hashAt(level - 1, 2 * index), await this.hashAt(level - 1, 2 * index + 1));
    }
    // MTH of leaves [start, start + n).
    async mth(start, n) {
      if ((n & (n - 1)) === 0 && start % n === 0) return this.hashAt(Math.log2(n), start / n);
      const k = largestPow2Below(n);
      return nodeHash(await this.mth(start, k), await this.mth(start + k, n - k));
    }
    async entry(index) {
      const bundle = Math.floor(index / TILE_WIDTH);
      const width = Math.min(TILE_WIDTH, this.size - bundle * TILE_WIDTH);
      const data = await this.get("entries", bundle, width);
      let at = 0;
      for (let i = 0; i < width; i++) {
        if (at + 2 > data.length) throw new Error("entry bundle is truncated");
        const len = (data[at] << 8) | data[at + 1];
        if (i === index % TILE_WIDTH) return data.slice(at + 2, at + 2 + len);
        at += 2 + len;
      }
      throw new Error("entry " + index + " is not in its bundle");
    }
  }

  function largestPow2Below(n) { let k = 1; while (k * 2 < n) k *= 2; return k; }

  // RFC 9162 2.1.3.1 PATH(m, D[start:start+n]).
  async function inclusionPath(tiles, m, start, n) {
    if (n <= 1) return [];
    const k = largestPow2Below(n);
    if (m < k) return [...await inclusionPath(tiles, m, start, k), await tiles.mth(start + k, n - k)];
    return [...await inclusionPath(tiles, m - k, start + k, n - k), await tiles.mth(start, k)];
  }

  // RFC 9162 2.1.4.1 SUBPROOF(m, D[start:start+n], b).
  async function subproof(tiles, m, start, n, b) {
    if (m === n) return b ? [] : [await tiles.mth(start, n)];
    const k = largestPow2Below(n);
    if (m <= k) return [...await subproof(tiles, m, start, k, b), await tiles.mth(start + k, n - k)];
    return [...await subproof(tiles, m - k, start + k, n - k, false), await tiles.mth(start, k)];
  }

  // RFC 9162 2.1.3.2: verify an inclusion proof against a root.
  async function verifyInclusion(index, size, hash, proof, root) {
    if (index >= size) return false;
    let fn = index, sn = size - 1, r = hash;
    for (const p of proof) {
      if (sn === 0) return false;
      if (fn % 2 === 1 || fn === sn) {
        r = await nodeHash(p, r);
        if (fn % 2 === 0) while (fn % 2 === 0 && fn !== 0) { fn = Math.floor(fn / 2); sn = Math.floor(sn / 2); }
      } else {
        r = await nodeHash(r, p);
      }
      fn = Math.floor(fn / 2); sn = Math.floor(sn / 2);
    }
    return sn === 0 && equal(r, root);
  }

  // RFC 9162 2.1.4.2: verify a consistency proof between two roots.
  async function verifyConsistency(first, second, firstRoot, secondRoot, proof) {
    if (first === second) return proof.length === 0 && equal(firstRoot, secondRoot);
    if (first === 0) return proof.length === 0;
    if (first > second || proof.length === 0) return false;
    let c = proof.slice();
    if ((first & (first - 1)) === 0) c = [firstRoot, ...c];
    let fn = first - 1, sn = second - 1;
    while (fn % 2 === 1) { fn = Math.floor(fn / 2); sn = Math.floor(sn / 2); }
    let fr = c[0], sr = c[0];
    for (const p of c.slice(1)) {
      if (sn === 0) return false;
      if (fn % 2 === 1 || fn === sn) {
        fr = await nodeHash(p, fr);
        sr = await nodeHash(p, sr);
        if (fn % 2 === 0) while (fn % 2 === 0 && fn !== 0) { fn = Math.floor(fn / 2); sn = Math.floor(sn / 2); }
      } else {
        sr = await nodeHash(sr, p);
      }
      fn = Math.floor(fn / 2); sn = Math.floor(sn / 2);
    }
    return sn === 0 && equal(fr, firstRoot) && equal(sr, secondRoot);
  }

  // --- the widget ----------------------------------------------------------------------
  async function verifierKeys(section) {
    const pinned = (localStorage.getItem("govhub.vkeys") || "").split("\n").filter(Boolean);
    const log = pinned.length ? pinned : JSON.parse(section.dataset.vkeys);
    const witnesses = JSON.parse(section.dataset.witnesses || "[]");
    return {
      pinned: pinned.length > 0,
      log: await Promise.all(log.map(parseVkey)),
      witnesses: await Promise.all(witnesses.map(parseVkey)),
    };
  }

  async function latestCheckpoint(section, keys, step) {
    const r = await fetch(section.dataset.log + "/checkpoint", { cache: "no-store" });
    if (!r.ok) throw new Error("checkpoint: HTTP " + r.status);
    const note = await r.text();
    const signed = await verifyNote(note, keys.log);
    if (!signed.good.length) throw new Error("no known log key signed the checkpoint");
    const cp = parseCheckpoint(signed.text);
    step("checkpoint size " + cp.size + " signed by " + signed.good.map((g) => g.name).join(", ") +
      (keys.pinned ? " (pinned key)" : " (key shown by this page)"));
    const cosigned = await verifyNote(note, keys.witnesses);
    step(cosigned.good.length + " witness cosignature(s) verify: " +
      cosigned.good.map((g) => g.name + " at " + new Date(g.timestamp * 1000).toISOString()).join(", "));
    return cp;
  }

  async function run(section) {
    const outcome = section.querySelector(".outcome");
    const steps = section.querySelector(".steps");
    steps.replaceChildren();
    outcome.className = "outcome";
    outcome.textContent = "验证中 verifying…";
    const step = (text) => { const li = document.createElement("li"); li.textContent = text; steps.append(li); };
    try {
      if (!window.crypto || !crypto.subtle) throw new Error("WebCrypto is unavailable: open the console over HTTPS or on localhost");
      const keys = await verifierKeys(section);
      const cp = await latestCheckpoint(section, keys, step);
      const tiles = new Tiles(section.dataset.log, cp.size);
      const kind = section.dataset.kind;
      if (kind === "checkpoint") {
        const root = await tiles.mth(0, cp.size);
        if (!equal(root, cp.root)) throw new Error("the root computed from the tiles is not the checkpoint's root");
        step("root recomputed from " + tiles.fetched + " tile(s) equals the signed root");
      } else if (kind === "inclusion") {
        const index = Number(section.dataset.index);
        const leaf = await tiles.entry(index);
        const event = JSON.parse(new TextDecoder().decode(leaf));
        if ((event.headers || {})["ce-id"] !== section.dataset.eventId) throw new Error("leaf " + index + " is not event " + section.dataset.eventId);
        const hash = await leafHash(leaf);
        step("leaf " + index + " holds event " + section.dataset.eventId + ", leaf hash " + b64encode(hash));
        const proof = await inclusionPath(tiles, index, 0, cp.size);
        step("inclusion proof of " + proof.length + " hash(es) read from " + tiles.fetched + " tile(s)");
        if (!await verifyInclusion(index, cp.size, hash, proof, cp.root)) throw new Error("the inclusion proof does not lead to the signed root");
        step("RFC 9162 inclusion proof verifies against the signed root");
      } else if (kind === "consistency") {
        const old = await verifyNote(section.dataset.oldNote, keys.log);
        if (!old.good.length) throw new Error("no known log key signed the old checkpoint");
        const first = parseCheckpoint(old.text);
        step("old checkpoint size " + first.size + " is signed by the log");
        const proof = await subproof(tiles, first.size, 0, cp.size, true);
        step("consistency proof of " + proof.length + " hash(es) read from " + tiles.fetched + " tile(s)");
        if (!await verifyConsistency(first.size, cp.size, first.root, cp.root, proof)) throw new Error("the old checkpoint is not a prefix of the latest one");
        step("RFC 9162 consistency proof verifies between the two signed roots");
      }
      outcome.className = "outcome ok";
      outcome.textContent = "✓ 已在您的浏览器中验证 verified in your browser";
    } catch (err) {
      outcome.className = "outcome bad";
      outcome.textContent = "✗ 验证失败 verification failed: " + err.message;
    }
  }

  document.addEventListener("DOMContentLoaded", () => {
    for (const section of document.querySelectorAll("section.verify")) {
      section.querySelector("button.run").addEventListener("click", () => run(section));
      run(section);
    }
  });
})();
