// The cells on screen. Messages only mark cells dirty; the page is drawn at most once
// per animation frame, so a flood of output never blocks the WebSocket's reader. The
// first change after a quiet frame is drawn at once (at the end of the message's task),
// so a result shows without waiting for the next frame.

import type { Cell, Changes } from "../reducer";
import { CellView } from "./cellview";
import type { OutputActions } from "./outputviews";

const NEAR_BOTTOM_PX = 96;
const FRAME_MS = 16;

export interface PageStatus {
  kernelState(state: string): void;
}

export class NotebookView implements Changes {
  private readonly views = new Map<string, CellView>();
  private readonly dirty = new Set<Cell>();
  private added: (Cell | string)[] = [];
  private removed: Cell[] = [];
  private frame = 0;
  private soon = false;
  private lastFlush = -Infinity;
  /** Whether the page follows new output (the reader is at the bottom). */
  private follow = true;

  constructor(
    private readonly container: HTMLElement,
    private readonly actions: OutputActions,
    private readonly status: PageStatus,
  ) {
    addEventListener("scroll", () => (this.follow = this.atBottom()), { passive: true });
  }

  private atBottom(): boolean {
    const root = document.documentElement;
    return innerHeight + scrollY >= root.scrollHeight - NEAR_BOTTOM_PX;
  }

  /** Scroll to the newest output on the next frame (after the reader ran a cell). */
  followOutput(): void {
    this.follow = true;
    this.schedule();
  }

  private schedule(): void {
    if (this.frame || this.soon) return;
    if (performance.now() - this.lastFlush >= FRAME_MS) {
      this.soon = true;
      queueMicrotask(() => {
        this.soon = false;
        if (!this.frame) this.flush();
      });
      return;
    }
    this.frame = requestAnimationFrame(() => this.flush());
  }

  // -- Changes (called by the model, as messages arrive) -----------------------------

  cellAdded(cell: Cell): void {
    this.added.push(cell);
    this.schedule();
  }

  cellChanged(cell: Cell): void {
    this.dirty.add(cell);
    this.schedule();
  }

  cellsRemoved(cells: Cell[]): void {
    this.removed.push(...cells);
    this.schedule();
  }

  kernelState(state: string): void {
    this.status.kernelState(state);
  }

  notice(text: string): void {
    this.added.push(text);
    this.schedule();
  }

  // -- drawing ---------------------------------------------------------------------------

  flush(): void {
    if (this.frame) cancelAnimationFrame(this.frame);
    this.frame = 0;
    this.lastFlush = performance.now();
    const follow = this.follow;
    const gone = new Set(this.removed);
    for (const cell of this.removed) {
      this.views.get(cell.id)?.el.remove();
      this.views.delete(cell.id);
      this.dirty.delete(cell);
    }
    this.removed = [];
    const fragment = document.createDocumentFragment();
    for (const item of this.added) {
      if (typeof item === "string") {
        const p = document.createElement("p");
        p.className = "notice";
        p.textContent = item;
        fragment.append(p);
        continue;
      }
      if (gone.has(item) || this.views.has(item.id)) continue;
      const view = new CellView(item, this.actions);
      this.views.set(item.id, view);
      this.dirty.delete(item);
      fragment.append(view.el);
    }
    this.added = [];
    this.container.append(fragment);
    for (const cell of this.dirty) this.views.get(cell.id)?.update();
    this.dirty.clear();
    if (follow) {
      scrollTo({ top: document.documentElement.scrollHeight, behavior: "instant" });
      this.follow = true;
    }
  }

  clearNotices(): void {
    for (const el of this.container.querySelectorAll(".notice")) el.remove();
  }
}
