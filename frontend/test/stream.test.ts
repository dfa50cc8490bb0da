// A stream output's text as the page keeps it: the service's \r and line rules
// (ipytwist/kernel/streamtext.py), then the page's own bounds on what it keeps.

import assert from "node:assert/strict";
import { test } from "node:test";
import {
  MAX_KEPT_CHARS,
  MAX_KEPT_LINES,
  StreamText,
  applyCarriageReturns,
  cutLine,
} from "../src/stream";
import { random } from "./support";

const textOf = (t: StreamText): string => t.lines.map((l) => `${l}\n`).join("") + t.partial;

test("\\r returns to the line start and the text after it overwrites", () => {
  assert.equal(applyCarriageReturns("10%\r50%\r100%\n"), "100%\n");
  assert.equal(applyCarriageReturns("abc\rX\n"), "Xbc\n");
  assert.equal(applyCarriageReturns("a\r\nb"), "a\nb");
  assert.equal(applyCarriageReturns("no returns\n"), "no returns\n");
});

/** Carriage returns as they were applied before: a copy of the line for each `\r`. */
function quadratic(text: string): string {
  return text
    .replace(/\r\n/g, "\n")
    .split("\n")
    .map((line) => {
      const parts = line.split("\r");
      let shown = parts[0];
      for (const part of parts.slice(1)) shown = part + shown.slice(part.length);
      return shown;
    })
    .join("\n");
}

test("\r is applied as a terminal does, whatever the text", () => {
  const rnd = random(16);
  for (let run = 0; run < 500; run += 1) {
    const text = Array.from({ length: Math.floor(rnd() * 80) }, () =>
      "ab\n\r"[Math.floor(rnd() * 4)],
    ).join("");
    assert.equal(applyCarriageReturns(text), quadratic(text), JSON.stringify(text));
  }
});

test("a storm of \r costs time in proportion to the text, not to the line", () => {
  // 100 messages of 30,000 "\ry" over a 10,000-character line took 4.2 s.
  const started = performance.now();
  const t = new StreamText("stdout", 10_000);
  t.write("x".repeat(10_000));
  for (let i = 0; i < 100; i += 1) t.write("\ry".repeat(30_000));
  t.write("\n" + "z".repeat(60_000) + "\ry".repeat(2_000) + "\n");
  assert.ok(performance.now() - started < 1000, `${performance.now() - started} ms`);
  assert.deepEqual(t.lines, [
    "y" + "x".repeat(9_999),
    cutLine("y" + "z".repeat(59_999), 60_000, 10_000),
  ]);
});

test("a long line streamed in pieces is cut once, with an exact count", () => {
  // The same steps as the service's test of its transcript (tests/test_transcript.py).
  const t = new StreamText("stdout", 5);
  for (let i = 0; i < 4; i += 1) t.write("abcdef");
  assert.equal(textOf(t), "abcde ... [19 characters hidden]");
  t.write("gh\nnext\r");
  t.write("N");
  assert.equal(textOf(t), "abcde ... [21 characters hidden]\nNext");
  t.write("\rabcdefghij\rxy\n");
  assert.ok(textOf(t).endsWith("\nxycde ... [5 characters hidden]\n"));
});

test("lines written in any pieces are those of the whole text, \\r applied and cut", () => {
  const rnd = random(15);
  for (let run = 0; run < 500; run += 1) {
    const limit = 3 + Math.floor(rnd() * 18);
    const chunks = Array.from({ length: Math.floor(rnd() * 12) }, () =>
      Array.from({ length: Math.floor(rnd() * 60) }, () => "ab\n\r"[Math.floor(rnd() * 4)]).join(""),
    );
    const t = new StreamText("stdout", limit);
    for (const chunk of chunks) t.write(chunk);
    const lines = applyCarriageReturns(chunks.join("")).split("\n");
    const partial = lines.pop() ?? "";
    const cut = (line: string) => cutLine(line, line.length, limit);
    const context = JSON.stringify({ limit, chunks });
    assert.deepEqual(t.lines, lines.map(cut), context);
    assert.equal(t.partial, cut(partial), context);
  }
});

test("the page keeps the newest lines, and counts those it let go", () => {
  const t = new StreamText("stdout", 10_000);
  const n = Math.ceil(MAX_KEPT_LINES * 1.25) + 1;
  let written = 0;
  for (const size of [1000, n, 7]) {
    t.write(Array.from({ length: size }, (_, i) => `${written + i}\n`).join(""));
    written += size;
    assert.ok(t.lines.length <= MAX_KEPT_LINES * 1.25);
    assert.equal(t.total, written);
  }
  assert.equal(t.lines.length, MAX_KEPT_LINES + 7);
  assert.equal(t.dropped, written - MAX_KEPT_LINES - 7);
  assert.equal(t.lines[0], String(t.dropped));
  assert.deepEqual(t.linesFrom(written - 2), [String(written - 2), String(written - 1)]);
  assert.equal(t.linesFrom(0).length, t.lines.length);
});

test("the page keeps its lines within its character bound", () => {
  const t = new StreamText("stdout", 200_000);
  const line = "x".repeat(100_000);
  const n = Math.ceil((MAX_KEPT_CHARS * 1.25) / line.length) + 1;
  t.write(`${line}\n`.repeat(n));
  const kept = t.lines.reduce((sum, l) => sum + l.length, 0);
  assert.ok(kept <= MAX_KEPT_CHARS, `${kept} characters kept`);
  assert.equal(t.lines.length, Math.floor(MAX_KEPT_CHARS / line.length));
  assert.equal(t.total, n);
});

test("a transcript's text is kept as the service cut it, with its hidden lines", () => {
  const text = "0\nabcdefghij ... [5 characters hidden]\n... [7 lines hidden] ...\n9\n";
  const t = StreamText.fromTranscript("stdout", text, 7, 10);
  assert.equal(textOf(t), text);
  assert.deepEqual([t.elided, t.elidedAt], [7, 2]);
  const none = StreamText.fromTranscript("stdout", "a\n... [3 lines hidden] ...\n", 0, 10);
  assert.deepEqual([none.elided, none.elidedAt], [0, -1]);
});

test("an unfinished line the service cut goes on with its real length", () => {
  // The service kept "abcdefgh" as "abcde ... [3 characters hidden]" (limit 5).
  const t = StreamText.fromTranscript("stdout", "done\nabcde ... [3 characters hidden]", 0, 5);
  t.write("xy\nz");
  assert.equal(textOf(t), "done\nabcde ... [5 characters hidden]\nz");
  // Text that only looks like a cut (shorter than the limit) is the user's own.
  const own = StreamText.fromTranscript("stdout", "ab ... [3 characters hidden]", 0, 100);
  own.write("!\n");
  assert.equal(textOf(own), "ab ... [3 characters hidden]!\n");
});

test("every write bumps the version the views compare with", () => {
  const t = new StreamText("stdout", 10);
  t.write("a");
  t.write("");
  assert.equal(t.version, 2);
});
