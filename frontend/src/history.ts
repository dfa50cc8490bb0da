// The input history that Up/Down walk: the code of every cell in the transcript, oldest
// first, consecutive repeats once; what was being typed comes back after the newest.

const MAX_ENTRIES = 1000;

export class InputHistory {
  private entries: string[] = [];
  private index = 0; // entries.length: the draft
  private draft = "";

  add(code: string): void {
    if (this.entries[this.entries.length - 1] !== code) this.entries.push(code);
    if (this.entries.length > MAX_ENTRIES) this.entries.shift();
    this.reset();
  }

  reset(): void {
    this.index = this.entries.length;
    this.draft = "";
  }

  prev(current: string): string | null {
    if (this.index === 0) return null;
    if (this.index === this.entries.length) this.draft = current;
    this.index -= 1;
    return this.entries[this.index];
  }

  next(): string | null {
    if (this.index >= this.entries.length) return null;
    this.index += 1;
    return this.index === this.entries.length ? this.draft : this.entries[this.index];
  }
}
