// One stream output's text, as a terminal shows it, by the service's rules
// (ipytwist/kernel/streamtext.py): `\r` returns to the line start, also across messages,
// and a line keeps its first `maxLineChars` characters (the transcript's limit, sent with
// it) and an exact count of the rest. The page keeps the newest MAX_KEPT_LINES lines
// within MAX_KEPT_CHARS: its own bounds (the service's transcript keeps fewer).

export const MAX_KEPT_LINES = 200_000;
export const MAX_KEPT_CHARS = 16_000_000;

/** The line shown when each layer was written from the line's start over the ones
 * before it (`layers`, oldest first), up to `limit` characters: built from the newest
 * layer down, each older one adding only what sticks out to the right of those above
 * it, so the time is linear in the layers (ipytwist/kernel/streamtext.py, `overlay`). */
export function overlay(layers: string[], limit = Infinity): string {
  const pieces: string[] = [];
  let covered = 0;
  for (let i = layers.length - 1; i >= 0 && covered < limit; i -= 1) {
    const layer = layers[i];
    if (layer.length > covered) {
      pieces.push(layer.slice(covered, limit));
      covered = layer.length;
    }
  }
  return pieces.join("");
}

export function applyCarriageReturns(text: string): string {
  if (!text.includes("\r")) return text;
  return text
    .split("\n")
    .map((line) => (line.includes("\r") ? overlay(line.split("\r")) : line))
    .join("\n");
}

/** `line` (the start of a line `length` characters long) as kept. */
export function cutLine(line: string, length: number, limit: number): string {
  if (length <= limit) return line;
  return `${line.slice(0, limit)} ... [${length - limit} characters hidden]`;
}

const CUT_MARK = / \.\.\. \[(\d+) characters hidden\]$/;

export class StreamText {
  /** Complete lines kept; line i has the global index `dropped + i`. */
  lines: string[] = [];
  /** Complete lines no longer kept (the oldest). */
  dropped = 0;
  /** The last line, not yet ended by a newline, as shown. */
  partial = "";
  /** Bumped on every write: views compare it with what they rendered. */
  version = 0;
  /** Lines the service left out of its transcript, where the line `elidedAt` (global
   * index) says "... [N lines hidden] ..." (0: none; the whole output has them). */
  elided = 0;
  elidedAt = -1;
  private chars = 0; // in the kept complete lines
  // The unfinished last line: the text written since its last `\r` (`over`), on top of
  // what was shown before that `\r` (`under`); each keeps at most maxLineChars
  // characters and the length it really has.
  private over = "";
  private overLen = 0;
  private under = "";
  private underLen = 0;

  constructor(
    readonly name: string,
    readonly maxLineChars: number,
  ) {}

  get total(): number {
    return this.dropped + this.lines.length;
  }

  write(chunk: string): void {
    const pieces = chunk.split("\n");
    this.feed(pieces[0]);
    if (pieces.length > 1) {
      const done = [this.lineShown()];
      for (let i = 1; i < pieces.length - 1; i += 1) {
        const line = pieces[i].includes("\r") ? applyCarriageReturns(pieces[i]) : pieces[i];
        done.push(cutLine(line, line.length, this.maxLineChars));
      }
      this.over = this.under = "";
      this.overLen = this.underLen = 0;
      this.feed(pieces[pieces.length - 1]);
      this.add(done);
    }
    this.partial = this.lineShown();
    this.version += 1;
  }

  /** Text with no newline, onto the unfinished line: in time linear in the segment
   * (plus the line kept, once). */
  private feed(segment: string): void {
    if (!segment.includes("\r")) {
      this.writeOver(segment);
      return;
    }
    const parts = segment.split("\r");
    this.writeOver(parts[0]);
    const middle = parts.slice(1, -1);
    let longest = Math.max(this.underLen, this.overLen);
    for (const part of middle) longest = Math.max(longest, part.length);
    this.under = overlay([this.under, this.over, ...middle], this.maxLineChars);
    this.underLen = longest;
    this.over = "";
    this.overLen = 0;
    this.writeOver(parts[parts.length - 1]);
  }

  private writeOver(text: string): void {
    this.overLen += text.length;
    if (this.over.length < this.maxLineChars) {
      this.over = (this.over + text).slice(0, this.maxLineChars);
    }
  }

  private lineShown(): string {
    const shown = this.over + this.under.slice(this.over.length);
    return cutLine(shown, Math.max(this.overLen, this.underLen), this.maxLineChars);
  }

  /** Complete lines, in bulk; past the bounds the oldest go in one go (amortised). */
  private add(lines: string[]): void {
    for (const line of lines) {
      this.lines.push(line);
      this.chars += line.length;
    }
    if (this.lines.length > MAX_KEPT_LINES * 1.25 || this.chars > MAX_KEPT_CHARS * 1.25) {
      let n = Math.max(0, this.lines.length - MAX_KEPT_LINES);
      for (let i = 0; i < n; i += 1) this.chars -= this.lines[i].length;
      while (this.chars > MAX_KEPT_CHARS && n < this.lines.length - 1) {
        this.chars -= this.lines[n].length;
        n += 1;
      }
      this.lines.splice(0, n);
      this.dropped += n;
    }
  }

  /** A transcript's text (its lines already cut by the service), with the count of
   * lines its marker line stands for. */
  static fromTranscript(
    name: string,
    text: string,
    hiddenLines: number,
    maxLineChars: number,
  ): StreamText {
    const t = new StreamText(name, maxLineChars);
    const lines = text.split("\n");
    const last = lines.pop() ?? "";
    t.add(lines);
    // An unfinished line the service cut: live output goes on from its real length.
    const cut = CUT_MARK.exec(last);
    if (cut && last.length - cut[0].length === maxLineChars) {
      t.over = last.slice(0, maxLineChars);
      t.overLen = maxLineChars + Number(cut[1]);
    } else {
      t.over = last;
      t.overLen = last.length;
    }
    t.partial = t.lineShown();
    t.version += 1;
    if (hiddenLines > 0) {
      const at = t.lines.indexOf(`... [${hiddenLines} lines hidden] ...`);
      if (at >= 0) {
        t.elided = hiddenLines;
        t.elidedAt = t.dropped + at;
      }
    }
    return t;
  }

  /** Complete lines from global index `from` (clamped to what is kept) to the end. */
  linesFrom(from: number): string[] {
    return this.lines.slice(Math.max(0, from - this.dropped));
  }
}
