// A stream output on screen, updated incrementally: each frame appends the lines that
// arrived since the last one as one chunk, and only the newest VISIBLE_LINES are kept
// in the page unless the reader asks for all of them.

import type { AnsiUp } from "ansi_up";
import { MAX_KEPT_LINES, type StreamText } from "../stream";
import { ansiConverter, ansiToHtml } from "./ansi";

export const VISIBLE_LINES = 1000;

interface Chunk {
  el: HTMLElement;
  lines: number;
}

const fmt = (n: number): string => n.toLocaleString("en-US");

export class StreamView {
  readonly el: HTMLElement;
  private readonly bar: HTMLElement;
  private readonly barText: HTMLElement;
  private readonly toggle: HTMLButtonElement;
  private readonly download: HTMLAnchorElement;
  private readonly pre: HTMLPreElement;
  private readonly partialEl: HTMLSpanElement;
  private chunks: Chunk[] = [];
  private shown = 0; // complete lines in the page
  private renderedTotal = 0; // global index after the last line rendered
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
    for (const c of this.chunks) c.el.remove();
    this.chunks = [];
    this.shown = 0;
    this.ansi = ansiConverter();
    this.renderedTotal = this.expanded ? this.text.dropped : Math.max(0, this.text.total - VISIBLE_LINES);
    this.renderedVersion = -1;
    this.update();
    this.toggle.focus();
  }

  update(): void {
    const t = this.text;
    if (t.version === this.renderedVersion) return;
    this.renderedVersion = t.version;
    const limit = this.expanded ? MAX_KEPT_LINES : VISIBLE_LINES;
    const from = Math.max(this.renderedTotal, t.dropped);
    if (t.total > from) {
      let start = from;
      if (t.total - from > limit) {
        // Too many for the page: skip the oldest, but keep their colour state.
        start = t.total - limit;
        const skipped = t.linesFrom(from).slice(0, start - from);
        if (skipped.some((l) => l.includes("\x1b"))) this.ansi.ansi_to_html(skipped.join("\n"));
      }
      // Lines between those on the page and the new ones are gone: start afresh.
      if (start > this.renderedTotal) this.dropChunks(this.chunks.length);
      const lines = t.linesFrom(start);
      const el = document.createElement("span");
      el.innerHTML = this.ansi.ansi_to_html(`${lines.join("\n")}\n`);
      this.pre.insertBefore(el, this.partialEl);
      this.chunks.push({ el, lines: lines.length });
      this.shown += lines.length;
      this.renderedTotal = t.total;
      let extra = 0;
      while (extra < this.chunks.length - 1 && this.shown - this.chunks[extra].lines >= limit) {
        this.shown -= this.chunks[extra].lines;
        extra += 1;
      }
      this.dropChunks(extra, false);
    }
    if (t.partial !== this.renderedPartial) {
      this.renderedPartial = t.partial;
      this.partialEl.innerHTML = t.partial ? ansiToHtml(t.partial) : "";
    }
    this.updateBar();
  }

  private dropChunks(n: number, recount = true): void {
    for (const c of this.chunks.splice(0, n)) {
      c.el.remove();
      if (recount) this.shown -= c.lines;
    }
  }

  private updateBar(): void {
    const t = this.text;
    const hidden = t.total - this.shown;
    const notKept = t.dropped;
    // The oldest lines are the ones not shown: the service's marker line among them
    // stands for the lines it left out.
    const elided = t.elided && t.elidedAt < t.total - this.shown ? t.elided - 1 : 0;
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
