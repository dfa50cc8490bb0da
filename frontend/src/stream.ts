// One stream output's text, as a terminal shows it: `\r` returns to the line start,
// lines longer than MAX_LINE_CHARS are cut, and only the newest MAX_KEPT_LINES lines
// are kept, within MAX_KEPT_CHARS (the service's transcript keeps fewer).

export const MAX_LINE_CHARS = 10_000;
export const MAX_KEPT_LINES = 200_000;
export const MAX_KEPT_CHARS = 16_000_000;

export function applyCarriageReturns(text: string): string {
  if (!text.includes("\r")) return text;
  const lines = text.replace(/\r\n/g, "\n").split("\n");
  for (let i = 0; i < lines.length; i += 1) {
    const line = lines[i];
    if (!line.includes("\r")) continue;
    const parts = line.split("\r");
    let shown = parts[0];
    for (const part of parts.slice(1)) shown = part + shown.slice(part.length);
    lines[i] = shown;
  }
  return lines.join("\n");
}

function cut(line: string): string {
  if (line.length <= MAX_LINE_CHARS) return line;
  return `${line.slice(0, MAX_LINE_CHARS)} ... [${line.length - MAX_LINE_CHARS} characters hidden]`;
}

export class StreamText {
  /** Complete lines kept; line i has the global index `dropped + i`. */
  lines: string[] = [];
  /** Complete lines no longer kept (the oldest). */
  dropped = 0;
  /** The last line, not yet ended by a newline. */
  partial = "";
  /** Bumped on every write: views compare it with what they rendered. */
  version = 0;
  /** Lines the service left out of its transcript, where the line `elidedAt` (global
   * index) says "... [N lines hidden] ..." (0: none; the whole output has them). */
  elided = 0;
  elidedAt = -1;
  private chars = 0; // in the kept complete lines

  constructor(readonly name: string) {}

  get total(): number {
    return this.dropped + this.lines.length;
  }

  write(chunk: string): void {
    let text = this.partial + chunk;
    if (text.includes("\r")) text = applyCarriageReturns(text);
    const parts = text.split("\n");
    this.partial = cut(parts.pop() ?? "");
    for (const part of parts) {
      const line = cut(part);
      this.lines.push(line);
      this.chars += line.length;
    }
    if (this.lines.length > MAX_KEPT_LINES * 1.25 || this.chars > MAX_KEPT_CHARS * 1.25) {
      // Drop the oldest in one go (amortised): back under both bounds.
      let n = Math.max(0, this.lines.length - MAX_KEPT_LINES);
      for (let i = 0; i < n; i += 1) this.chars -= this.lines[i].length;
      while (this.chars > MAX_KEPT_CHARS && n < this.lines.length - 1) {
        this.chars -= this.lines[n].length;
        n += 1;
      }
      this.lines.splice(0, n);
      this.dropped += n;
    }
    this.version += 1;
  }

  /** A transcript's text, with the count of lines its marker line stands for. */
  static fromTranscript(name: string, text: string, hiddenLines: number): StreamText {
    const t = new StreamText(name);
    t.write(text);
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
