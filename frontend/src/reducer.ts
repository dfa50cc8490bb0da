// The notebook as the page knows it: the transcript loaded from the service, then every
// iopub message applied with the service's own rules (ipytwist/kernel/transcript.py).
// Pure model: views learn what changed through `Changes`.

import { type Message, parentId } from "./protocol";
import { StreamText } from "./stream";

export type CellState = "queued" | "running" | "done" | "error" | "interrupted" | "aborted";
export type MimeBundle = Record<string, unknown>;

export interface RichOutput {
  kind: "rich";
  outputType: "display_data" | "execute_result";
  data: MimeBundle;
  metadata: Record<string, unknown>;
  executionCount: number | null;
  displayId: string | null;
  version: number;
}
export interface ErrorOutput {
  kind: "error";
  ename: string;
  evalue: string;
  traceback: string[];
}
export interface StreamOutput {
  kind: "stream";
  text: StreamText;
}
/** `input()` waiting for this page's answer (only the asking client gets input_request). */
export interface InputOutput {
  kind: "input";
  prompt: string;
  password: boolean;
  request: Message;
  answer: string | null;
}
export type Output = RichOutput | ErrorOutput | StreamOutput | InputOutput;

export interface Cell {
  id: string;
  code: string;
  origin: string;
  client: string;
  state: CellState;
  executionCount: number | null;
  outputs: Output[];
  clearPending: boolean;
  droppedOutputs: number;
  /** Bumped when the list of outputs changes (not when a stream grows). */
  structure: number;
}

export interface Changes {
  cellAdded(cell: Cell): void;
  cellChanged(cell: Cell): void;
  cellsRemoved(cells: Cell[]): void;
  kernelState(state: string): void;
  notice(text: string): void;
}

/** The transcript's own limits, sent with it (ipytwist/kernel/transcript.py): the page
 * applies them to live output too. */
export interface TranscriptLimits {
  max_cells: number;
  max_outputs: number;
  max_lines: number;
  max_line_chars: number;
  max_bytes: number;
}

/** Before a transcript is loaded (loading clears every cell): none. */
const NOT_LOADED: TranscriptLimits = {
  max_cells: Infinity,
  max_outputs: Infinity,
  max_lines: Infinity,
  max_line_chars: Infinity,
  max_bytes: Infinity,
};

/** Message ids remembered so that none is applied twice (the page's own bound). */
const SEEN_IDS = 10_000;

/** Transcript JSON (GET /api/kernels/{id}/transcript). */
export interface TranscriptJson {
  cells: {
    id: string;
    code: string;
    origin: string;
    client: string;
    state: CellState;
    execution_count: number | null;
    outputs: Record<string, unknown>[];
    dropped_outputs: number;
  }[];
  last_msg_id: string;
  dropped_cells: number;
  limits: TranscriptLimits;
  kernel?: { execution_state?: string; connections?: number };
  /** The widget-state+json document of the kernel's live widgets (when it has some). */
  widgets?: unknown;
}

const asText = (v: unknown): string => (Array.isArray(v) ? v.join("") : String(v ?? ""));
const asCount = (v: unknown): number | null => (typeof v === "number" ? v : null);

export class Notebook {
  readonly cells = new Map<string, Cell>();
  private seen = new Set<string>();
  private displays = new Map<string, Set<Cell>>();
  private limits = NOT_LOADED;

  constructor(private readonly changes: Changes) {}

  // -- loading -----------------------------------------------------------------

  load(t: TranscriptJson): void {
    this.clear();
    this.limits = t.limits;
    for (const c of t.cells) {
      const cell = this.newCell(c.id, c.code, c.origin, c.client);
      cell.state = c.state;
      cell.executionCount = c.execution_count;
      cell.droppedOutputs = c.dropped_outputs || 0;
      for (const o of c.outputs) {
        const out = this.outputFromJson(o);
        if (out) this.addOutput(cell, out);
      }
      this.changes.cellAdded(cell);
    }
  }

  private outputFromJson(o: Record<string, unknown>): Output | null {
    switch (o.output_type) {
      case "stream": {
        const hidden = Number(o.hidden_lines) || 0;
        const chars = this.limits.max_line_chars;
        const text = StreamText.fromTranscript(String(o.name), asText(o.text), hidden, chars);
        return { kind: "stream", text };
      }
      case "error":
        return {
          kind: "error",
          ename: String(o.ename ?? ""),
          evalue: String(o.evalue ?? ""),
          traceback: Array.isArray(o.traceback) ? o.traceback.map(String) : [],
        };
      case "display_data":
      case "execute_result":
        return this.richOutput(o.output_type, o);
      default:
        return null;
    }
  }

  private richOutput(outputType: RichOutput["outputType"], c: Record<string, unknown>): RichOutput {
    const transient = (c.transient ?? {}) as { display_id?: unknown };
    return {
      kind: "rich",
      outputType,
      data: { ...((c.data as MimeBundle) ?? {}) },
      metadata: { ...((c.metadata as Record<string, unknown>) ?? {}) },
      executionCount: asCount(c.execution_count),
      displayId: typeof transient.display_id === "string" ? transient.display_id : null,
      version: 0,
    };
  }

  clear(): void {
    const all = [...this.cells.values()];
    this.cells.clear();
    this.displays.clear();
    if (all.length) this.changes.cellsRemoved(all);
  }

  // -- cells ---------------------------------------------------------------------

  private newCell(id: string, code: string, origin: string, client: string): Cell {
    const cell: Cell = {
      id,
      code,
      origin,
      client,
      state: "queued",
      executionCount: null,
      outputs: [],
      clearPending: false,
      droppedOutputs: 0,
      structure: 0,
    };
    this.cells.set(id, cell);
    const max = this.limits.max_cells;
    if (this.cells.size > max) {
      const old: Cell[] = [];
      for (const [key, c] of this.cells) {
        if (this.cells.size <= max) break;
        this.cells.delete(key);
        old.push(c);
      }
      this.changes.cellsRemoved(old);
    }
    return cell;
  }

  /** This page sent an execute request: its cell appears at once, queued. */
  request(msgId: string, code: string, session: string): Cell {
    const cell = this.newCell(msgId, code, "websocket", session);
    this.changes.cellAdded(cell);
    return cell;
  }

  // -- messages --------------------------------------------------------------------

  apply(msg: Message): void {
    const msgId = msg.header?.msg_id;
    if (msgId) {
      if (this.seen.has(msgId)) return; // never apply a message twice
      this.seen.add(msgId);
      if (this.seen.size > SEEN_IDS) this.seen.delete(this.seen.values().next().value as string);
    }
    const type = msg.header?.msg_type;
    const content = msg.content ?? {};
    // A debug_request's busy and idle come even while a cell runs (as on ipykernel):
    // they say nothing of the kernel's state.
    const debugging = msg.parent_header?.msg_type === "debug_request";
    if (type === "status" && !debugging) this.changes.kernelState(String(content.execution_state));
    if (type === "update_display_data") {
      this.updateDisplay(content);
      return;
    }
    const parent = parentId(msg);
    let cell = parent ? this.cells.get(parent) : undefined;
    if (!cell) {
      if (type === "execute_input" && parent) {
        // A cell run by another client (a console, JupyterLab, a script).
        cell = this.newCell(parent, String(content.code ?? ""), "other", "");
        cell.state = "running";
        cell.executionCount = asCount(content.execution_count);
        this.changes.cellAdded(cell);
      } else if (type === "stream" && String(content.text ?? "").startsWith("[ipytwist]")) {
        this.changes.notice(String(content.text));
      }
      return;
    }
    switch (type) {
      case "status": {
        const state = content.execution_state;
        if (state === "busy" && cell.state === "queued") cell.state = "running";
        else if (state === "idle" && (cell.state === "queued" || cell.state === "running")) {
          cell.state = cell.executionCount !== null ? "done" : "aborted";
        }
        if (state === "idle") this.closeInputs(cell);
        break;
      }
      case "execute_input":
        cell.state = "running";
        cell.executionCount = asCount(content.execution_count);
        break;
      case "clear_output":
        if (content.wait) cell.clearPending = true;
        else this.clearOutputs(cell);
        break;
      case "stream":
        this.stream(cell, content);
        break;
      case "display_data":
      case "execute_result":
        this.beforeOutput(cell);
        this.addOutput(cell, this.richOutput(type, content));
        break;
      case "error":
        this.beforeOutput(cell);
        this.addOutput(cell, {
          kind: "error",
          ename: String(content.ename ?? ""),
          evalue: String(content.evalue ?? ""),
          traceback: Array.isArray(content.traceback) ? content.traceback.map(String) : [],
        });
        cell.state = content.ename === "KeyboardInterrupt" ? "interrupted" : "error";
        break;
      default:
        return;
    }
    this.changes.cellChanged(cell);
  }

  /** An input_request addressed to this page. */
  inputRequest(msg: Message): void {
    const cell = this.cells.get(parentId(msg) ?? "");
    if (!cell) return;
    this.addOutput(cell, {
      kind: "input",
      prompt: String(msg.content?.prompt ?? ""),
      password: Boolean(msg.content?.password),
      request: msg,
      answer: null,
    });
    this.changes.cellChanged(cell);
  }

  answerInput(cell: Cell, output: InputOutput, value: string): void {
    output.answer = value;
    cell.structure += 1;
    this.changes.cellChanged(cell);
  }

  private closeInputs(cell: Cell): void {
    const before = cell.outputs.length;
    cell.outputs = cell.outputs.filter((o) => o.kind !== "input" || o.answer !== null);
    if (cell.outputs.length !== before) cell.structure += 1;
  }

  // -- outputs ----------------------------------------------------------------------

  private beforeOutput(cell: Cell): void {
    if (cell.clearPending) {
      cell.clearPending = false;
      this.clearOutputs(cell);
    }
  }

  private clearOutputs(cell: Cell): void {
    // An unanswered input() stays: the kernel still waits for it.
    cell.outputs = cell.outputs.filter((o) => o.kind === "input" && o.answer === null);
    cell.structure += 1;
  }

  private stream(cell: Cell, content: { name?: unknown; text?: unknown }): void {
    if (typeof content.name !== "string" || typeof content.text !== "string") return;
    this.beforeOutput(cell);
    const last = cell.outputs[cell.outputs.length - 1];
    if (last && last.kind === "stream" && last.text.name === content.name) {
      last.text.write(content.text);
      return;
    }
    const text = new StreamText(content.name, this.limits.max_line_chars);
    text.write(content.text);
    this.addOutput(cell, { kind: "stream", text });
  }

  private addOutput(cell: Cell, output: Output): void {
    cell.outputs.push(output);
    cell.structure += 1;
    if (output.kind === "rich" && output.displayId) {
      let cells = this.displays.get(output.displayId);
      if (!cells) this.displays.set(output.displayId, (cells = new Set()));
      cells.add(cell);
    }
    if (cell.outputs.length > this.limits.max_outputs) {
      cell.outputs.shift();
      cell.droppedOutputs += 1;
    }
  }

  private updateDisplay(content: Record<string, unknown>): void {
    const id = ((content.transient ?? {}) as { display_id?: unknown }).display_id;
    if (typeof id !== "string") return;
    const cells = this.displays.get(id);
    if (!cells) return;
    for (const cell of [...cells]) {
      let found = false;
      for (const out of cell.outputs) {
        if (out.kind === "rich" && out.displayId === id) {
          out.data = { ...((content.data as MimeBundle) ?? {}) };
          out.metadata = { ...((content.metadata as Record<string, unknown>) ?? {}) };
          out.version += 1;
          found = true;
        }
      }
      if (!found || !this.cells.has(cell.id)) cells.delete(cell);
      else this.changes.cellChanged(cell);
    }
  }
}
