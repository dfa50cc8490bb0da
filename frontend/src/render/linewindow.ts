// Which complete lines of a stream are on the page: each frame appends the lines that
// arrived since the last one as one chunk, and the oldest go, whole chunks and then the
// first lines of the oldest left, so that the page holds exactly the newest `limit`.
// Pure bookkeeping: StreamView carries out each step on the page.

/** What one frame does to the page. */
export interface Step {
  /** Remove every chunk first: the lines between them and the new ones are gone. */
  restart: boolean;
  /** The lines from global index `skipFrom` to `from` arrived but are not shown (too
   * many at once); their colours still count for the lines after them. */
  skipFrom: number;
  /** The new chunk: the lines from global index `from` to the text's end. */
  from: number;
  /** Then remove this many of the oldest chunks, whole... */
  drop: number;
  /** ...and this many lines from the start of the oldest that remains. */
  cut: number;
}

export class LineWindow {
  /** Complete lines on the page. */
  shown = 0;
  private chunks: number[] = []; // the lines of each chunk on the page, oldest first
  private end = 0; // global index after the last line on the page

  constructor(private limit: number) {}

  /** Nothing on the page; the next lines it shows start at global index `end`. */
  reset(limit: number, end: number): void {
    this.limit = limit;
    this.end = end;
    this.chunks = [];
    this.shown = 0;
  }

  /** The text now has `total` complete lines, the first `dropped` no longer kept: the
   * step that brings the page up to date, or null when no line is new. */
  append(total: number, dropped: number): Step | null {
    const skipFrom = Math.max(this.end, dropped);
    if (total <= skipFrom) return null;
    const from = Math.max(skipFrom, total - this.limit);
    const restart = from > this.end;
    if (restart) this.reset(this.limit, from);
    this.chunks.push(total - from);
    this.shown += total - from;
    this.end = total;
    let drop = 0;
    while (drop < this.chunks.length - 1 && this.shown - this.chunks[drop] >= this.limit) {
      this.shown -= this.chunks[drop];
      drop += 1;
    }
    this.chunks.splice(0, drop);
    // The oldest chunk left holds more lines than the page may show: cut them off, so
    // that the page shows exactly the newest `limit` (and the bar counts the rest).
    const cut = Math.max(0, this.shown - this.limit);
    this.chunks[0] -= cut;
    this.shown -= cut;
    return { restart, skipFrom, from, drop, cut };
  }
}
