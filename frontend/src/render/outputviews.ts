// One view per output: a stream grows in place, a display is redrawn when updated,
// an `input()` is a text field until answered.

import type { Cell, ErrorOutput, InputOutput, Output, RichOutput } from "../reducer";
import { ansiPre } from "./ansi";
import { renderMime } from "./mime";
import { omittedNote, omittedView } from "./omitted";
import { StreamView } from "./streamview";

export interface OutputView {
  readonly el: HTMLElement;
  update(): void;
}

export interface OutputActions {
  answerInput(cell: Cell, output: InputOutput, value: string): void;
  /** Where the service serves a cell's whole output (while its output log holds it). */
  outputUrl(cell: Cell): string;
  /** A widget view output: its element (a placeholder until the model exists), or null
   * when the page draws no widgets; `fallback` draws the output without the widget. */
  widgetView?(data: RichOutput["data"], fallback: () => HTMLElement): HTMLElement | null;
}

export function frame(body: HTMLElement, prompt = ""): HTMLElement {
  const el = document.createElement("div");
  el.className = "output";
  const p = document.createElement("div");
  p.className = "prompt out";
  p.textContent = prompt;
  if (!prompt) p.setAttribute("aria-hidden", "true");
  const wrapper = document.createElement("div");
  wrapper.className = "output-body";
  wrapper.append(body);
  el.append(p, wrapper);
  return el;
}

class RichView implements OutputView {
  readonly el: HTMLElement;
  private version = -1;
  private body: HTMLElement | null = null;

  constructor(
    private readonly output: RichOutput,
    private readonly actions: OutputActions,
  ) {
    this.el = document.createElement("div");
    this.update();
  }

  update(): void {
    const o = this.output;
    if (o.version === this.version) return;
    this.version = o.version;
    const note = omittedNote(o.metadata);
    const plain = (): HTMLElement => renderMime(o.data, o.metadata);
    const body = note ? omittedView(note) : (this.actions.widgetView?.(o.data, plain) ?? plain());
    const count = o.executionCount;
    const prompt = o.outputType === "execute_result" ? `Out[${count ?? " "}]:` : "";
    const wrapped = frame(body, prompt);
    if (this.body) {
      // Keep the height while the new content decodes: no jump for updated displays.
      wrapped.style.minHeight = `${this.el.offsetHeight}px`;
      requestAnimationFrame(() => (wrapped.style.minHeight = ""));
    }
    this.el.replaceChildren(wrapped);
    this.body = body;
  }
}

class ErrorView implements OutputView {
  readonly el: HTMLElement;

  constructor(output: ErrorOutput) {
    const text = output.traceback.length
      ? output.traceback.join("\n")
      : `${output.ename}: ${output.evalue}`;
    this.el = frame(ansiPre(text, "traceback"));
    this.el.classList.add("output-error");
  }

  update(): void {}
}

class InputView implements OutputView {
  readonly el: HTMLElement;
  private readonly body: HTMLElement;
  private answered = false;

  constructor(
    private readonly cell: Cell,
    private readonly output: InputOutput,
    private readonly actions: OutputActions,
  ) {
    this.body = document.createElement("div");
    this.body.className = "stdin";
    const label = document.createElement("label");
    const prompt = document.createElement("span");
    prompt.className = "stdin-prompt";
    prompt.textContent = output.prompt;
    const input = document.createElement("input");
    input.type = output.password ? "password" : "text";
    input.autocomplete = "off";
    input.spellcheck = false;
    if (!output.prompt.trim()) input.setAttribute("aria-label", "Input requested by the code");
    input.addEventListener("keydown", (event) => {
      if (event.key === "Enter" && !event.isComposing) {
        event.preventDefault();
        this.actions.answerInput(this.cell, this.output, input.value);
      }
    });
    label.append(prompt, input);
    this.body.append(label);
    this.el = frame(this.body);
    requestAnimationFrame(() => input.focus());
  }

  update(): void {
    const answer = this.output.answer;
    if (answer === null || this.answered) return;
    this.answered = true;
    const pre = document.createElement("pre");
    pre.className = "stdin-answered";
    pre.textContent = this.output.prompt + (this.output.password ? "" : answer);
    this.body.replaceChildren(pre);
  }
}

export function outputView(cell: Cell, output: Output, actions: OutputActions): OutputView {
  switch (output.kind) {
    case "stream": {
      const view = new StreamView(output.text, actions.outputUrl(cell));
      return { el: frame(view.el), update: () => view.update() };
    }
    case "rich":
      return new RichView(output, actions);
    case "error":
      return new ErrorView(output);
    case "input":
      return new InputView(cell, output, actions);
  }
}
