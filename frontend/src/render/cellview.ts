// One executed cell: its prompt, its code and its outputs.

import type { Cell, Output } from "../reducer";
import { codeBlock } from "./code";
import { type OutputActions, type OutputView, outputView } from "./outputviews";

const STATE_LABEL: Record<string, string> = {
  queued: "queued",
  running: "running",
  done: "",
  error: "error",
  interrupted: "interrupted",
  aborted: "not run",
};

export function inPrompt(cell: Cell): string {
  if (cell.state === "queued" || cell.state === "running") return "In [*]:";
  return `In [${cell.executionCount ?? " "}]:`;
}

export class CellView {
  readonly el: HTMLElement;
  private readonly prompt: HTMLElement;
  private readonly outputs: HTMLElement;
  private readonly views = new Map<Output, OutputView>();
  private structure = -1;
  private state = "";
  private dropped: HTMLElement | null = null;

  constructor(
    readonly cell: Cell,
    private readonly actions: OutputActions,
  ) {
    this.el = document.createElement("article");
    this.el.className = "cell";
    this.el.dataset.cellId = cell.id;
    const input = document.createElement("div");
    input.className = "input";
    this.prompt = document.createElement("div");
    this.prompt.className = "prompt in";
    const code = codeBlock(cell.code);
    code.classList.add("input-body");
    input.append(this.prompt, code);
    this.outputs = document.createElement("div");
    this.outputs.className = "outputs";
    this.el.append(input, this.outputs);
    this.update();
  }

  update(): void {
    const cell = this.cell;
    if (cell.state !== this.state || this.prompt.textContent !== inPrompt(cell)) {
      this.el.classList.remove(`state-${this.state}`);
      this.state = cell.state;
      this.el.classList.add(`state-${cell.state}`);
      this.prompt.textContent = inPrompt(cell);
      const label = STATE_LABEL[cell.state];
      this.prompt.title = label ? `Cell ${label}` : "";
      this.el.setAttribute("aria-busy", String(cell.state === "running" || cell.state === "queued"));
    }
    if (cell.structure !== this.structure) {
      this.structure = cell.structure;
      const els: HTMLElement[] = [];
      if (cell.droppedOutputs) {
        this.dropped ??= document.createElement("p");
        this.dropped.className = "truncated";
        this.dropped.textContent = `${cell.droppedOutputs.toLocaleString("en-US")} earlier outputs not kept.`;
        els.push(this.dropped);
      }
      const live = new Set(cell.outputs);
      for (const o of [...this.views.keys()]) if (!live.has(o)) this.views.delete(o);
      for (const o of cell.outputs) {
        let view = this.views.get(o);
        if (!view) this.views.set(o, (view = outputView(cell, o, this.actions)));
        els.push(view.el);
      }
      this.outputs.replaceChildren(...els);
    }
    for (const view of this.views.values()) view.update();
  }
}
