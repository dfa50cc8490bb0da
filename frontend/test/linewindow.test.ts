// Which lines of a stream are on the page: the newest `limit`, whatever frames the lines
// arrive in, carried out on a model of the page (its chunks, as global line indices).

import assert from "node:assert/strict";
import { test } from "node:test";
import { LineWindow } from "../src/render/linewindow";
import { random } from "./support";

const range = (from: number, to: number): number[] =>
  Array.from({ length: Math.max(0, to - from) }, (_, i) => from + i);

/** Lines as "first..last" when they run on one by one, else each of them (short diffs). */
function runOf(lines: number[]): string {
  const ordered = lines.every((line, i) => line === lines[0] + i);
  return ordered && lines.length ? `${lines[0]}..${lines[lines.length - 1]}` : lines.join(",");
}

/** The page's chunks, changed as StreamView changes its elements. */
class Page {
  chunks: number[][] = [];
  constructor(readonly window: LineWindow) {}

  /** A frame, when the text has `total` complete lines and keeps those from `dropped`. */
  frame(total: number, dropped = 0): void {
    const step = this.window.append(total, dropped);
    if (!step) return;
    if (step.restart) this.chunks = [];
    this.chunks.push(range(step.from, total));
    this.chunks.splice(0, step.drop);
    if (step.cut) this.chunks[0].splice(0, step.cut);
  }

  get lines(): number[] {
    return this.chunks.flat();
  }
}

test("3,000 lines in two frames (2,611 then 389): the newest 1,000 on the page", () => {
  // The chunking of the browser test that failed under load with "1,611 earlier lines
  // not shown": the page kept both chunks, 1,389 lines.
  const page = new Page(new LineWindow(1000));
  page.frame(2611);
  page.frame(3000);
  assert.equal(runOf(page.lines), runOf(range(2000, 3000)));
  assert.equal(page.window.shown, 1000);
});

test("lines in any frames: the page holds exactly the newest `limit`, once, in order", () => {
  const rnd = random(7);
  for (let run = 0; run < 300; run += 1) {
    const limit = 1 + Math.floor(rnd() * 50);
    const page = new Page(new LineWindow(limit));
    const frames: number[] = [];
    let total = 0;
    for (let f = Math.floor(rnd() * 30); f > 0; f -= 1) {
      total += rnd() < 0.2 ? 0 : Math.floor(rnd() * (rnd() < 0.5 ? limit / 3 : limit * 2));
      frames.push(total);
      page.frame(total);
      const context = JSON.stringify({ limit, frames });
      assert.equal(runOf(page.lines), runOf(range(Math.max(0, total - limit), total)), context);
      assert.equal(page.window.shown, page.lines.length, context);
    }
  }
});

test("lines the text no longer keeps are skipped: the page starts afresh after them", () => {
  const page = new Page(new LineWindow(100));
  page.frame(50);
  page.frame(400, 300);
  assert.equal(runOf(page.lines), runOf(range(300, 400)));
  page.frame(430, 300);
  assert.equal(runOf(page.lines), runOf(range(330, 430)));
  assert.equal(page.window.shown, 100);
});

test("reset: the page shows the lines from where it says, up to the new limit", () => {
  const page = new Page(new LineWindow(10));
  page.frame(25);
  page.window.reset(1000, 3);
  page.chunks = [];
  page.frame(40);
  assert.equal(runOf(page.lines), runOf(range(3, 40)));
  page.window.reset(10, 30);
  page.chunks = [];
  page.frame(40);
  page.frame(45);
  assert.equal(runOf(page.lines), runOf(range(35, 45)));
});
