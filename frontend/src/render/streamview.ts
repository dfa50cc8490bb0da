// A stream output on screen, updated incrementally: each frame appends the lines that
// arrived since the last one as one chunk, and only the newest VISIBLE_LINES are kept
// in the page (exactly: see LineWindow) unless the reader asks for all of them.

import type { AnsiUp } from "ansi_up";
import { MAX_KEPT_LINES, type StreamText } from "../stream";
import { ansiConverter, ansiToHtml } from "./ansi";
import { LineWindow, type Step } from "./linewindow";

export const VISIBLE_LINES = 1000;

const fmt = (n: number): string => n.toLocaleString("en-US");

/** Removes the first `n` lines of `el` (its text up to and with its n-th newline); what
 * is left keeps its colours (the elements around it stay). */
function cutLines(el: HTMLElement, n: number): void {
  const texts = document.createTreeWalker(el, NodeFilter.SHOW_TEXT);
  let left = n;
  for (let node = texts.nextNode(); node; node = texts.nextNode()) {
    const text = node.nodeValue ?? "";
    let at = -1;
    while (left > 0 && (at = text.indexOf("\n", at + 1)) >= 0) left -= 1;
    if (left === 0) {
      const range = document.createRange();
      range.setStart(el, 0);
      range.setEnd(node, at + 1);
      range.deleteContents();
      return;
    }
  }
}

export class StreamView {
  readonly el: HTMLElement;
  private readonly bar: HTMLElement;
  private readonly barText: HTMLElement;
  private readonly toggle: HTMLButtonElement;
  private readonly download: HTMLAnchorElement;
  private readonly pre: HTMLPreElement;
  private readonly partialEl: HTMLSpanElement;
  private chunks: HTMLElement[] = []; // as the window counts them
  private readonly window = new LineWindow(VISIBLE_LINES);
  private renderedVersion = -1;
  private renderedPartial = "";
  private ansi: AnsiUp = ansiConverter();
  private expanded = false;

  constructor(
    private readonly text: StreamText,
    downloadUrl = "",
  ) {
    this.el = document.createElement("div");
    this.el.className = `output-stream stream-${text.name}`;
    this.bar = document.createElement("div");
    this.bar.className = "truncated";
    this.bar.hidden = true;
    this.barText = document.createElement("span");
    this.toggle = document.createElement("button");
    this.toggle.type = "button";
    this.toggle.className = "link";
    this.toggle.addEventListener("click", () => this.setExpanded(!this.expanded));
    this.bar.append(this.barText, " ", this.toggle);
    this.download = document.createElement("a");
    if (downloadUrl) {
      // The service keeps the whole output while its log holds it (the page and the
      // transcript keep only the newest and the first lines).
      this.download.href = downloadUrl;
      this.download.download = `output-${text.name}.txt`;
      this.bar.append(" ", this.download);
    }
    this.pre = document.createElement("pre");
    this.partialEl = document.createElement("span");
    this.pre.append(this.partialEl);
    this.el.append(this.bar, this.pre);
    this.update();
  }

  private setExpanded(expanded: boolean): void {
    this.expanded = expanded;
    for (const el of this.chunks) el.remove();
    this.chunks = [];
    this.ansi = ansiConverter();
    const t = this.text;
    if (expanded) this.window.reset(MAX_KEPT_LINES, t.dropped);
    else this.window.reset(VISIBLE_LINES, Math.max(0, t.total - VISIBLE_LINES));
    this.renderedVersion = -1;
    this.update();
    this.toggle.focus();
  }

  update(): void {
    const t = this.text;
    if (t.version === this.renderedVersion) return;
    this.renderedVersion = t.version;
    const step = this.window.append(t.total, t.dropped);
    if (step) this.render(step);
    if (t.partial !== this.renderedPartial) {
      this.renderedPartial = t.partial;
      this.partialEl.innerHTML = t.partial ? ansiToHtml(t.partial) : "";
    }
    this.updateBar();
  }

  private render(step: Step): void {
    const t = this.text;
    if (step.from > step.skipFrom) {
      // Too many for the page: skip the oldest, but keep their colour state.
      const skipped = t.linesFrom(step.skipFrom).slice(0, step.from - step.skipFrom);
      if (skipped.some((l) => l.includes("\x1b"))) this.ansi.ansi_to_html(skipped.join("\n"));
    }
    if (step.restart) for (const el of this.chunks.splice(0)) el.remove();
    const el = document.createElement("span");
    el.innerHTML = this.ansi.ansi_to_html(`${t.linesFrom(step.from).join("\n")}\n`);
    this.pre.insertBefore(el, this.partialEl);
    this.chunks.push(el);
    for (const old of this.chunks.splice(0, step.drop)) old.remove();
    if (step.cut) cutLines(this.chunks[0], step.cut);
  }

  private updateBar(): void {
    const t = this.text;
    const hidden = t.total - this.window.shown;
    const notKept = t.dropped;
    // The oldest lines are the ones not shown: the service's marker line among them
    // stands for the lines it left out.
    const elided = t.elided && t.elidedAt < t.total - this.window.shown ? t.elided - 1 : 0;
    if (hidden <= 0 && !this.expanded) {
      this.bar.hidden = true;
      this.download.textContent = "";
      return;
    }
    this.bar.hidden = false;
    this.download.textContent = "Download the whole output";
    if (this.expanded) {
      if (notKept) {
        this.barText.textContent = `All ${fmt(t.lines.length)} lines kept by this page are shown (the first ${fmt(notKept)} are gone).`;
      } else if (t.elided) {
        this.barText.textContent = `All lines are shown but the ${fmt(t.elided)} the service left out in the middle.`;
      } else {
        this.barText.textContent = `All ${fmt(t.total)} lines are shown.`;
      }
      this.toggle.textContent = `Show only the last ${fmt(VISIBLE_LINES)}`;
    } else {
      this.barText.textContent = `${fmt(hidden + elided)} earlier lines not shown.`;
      this.toggle.textContent = notKept ? `Show the last ${fmt(t.lines.length)}` : "Show all";
    }
  }
}
