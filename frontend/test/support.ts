// Test support: Jupyter messages, a transcript's JSON, a record of what the
// reducer told its views, and a seeded random generator.

import type { Message } from "../src/protocol";
import {
  type Cell,
  type Changes,
  Notebook,
  type TranscriptJson,
  type TranscriptLimits,
} from "../src/reducer";

let counter = 0;

/** A message of `type` (iopub unless said), parented to the request `parent`. */
export function message(
  type: string,
  content: Record<string, unknown>,
  parent = "",
  channel = "iopub",
): Message {
  counter += 1;
  return {
    channel,
    header: {
      msg_id: `m${counter}`,
      msg_type: type,
      session: "kernel",
      username: "kernel",
      date: "",
      version: "5.3",
    },
    parent_header: parent ? { msg_id: parent } : {},
    metadata: {},
    content,
    buffers: [],
  };
}

export const status = (parent: string, state: string): Message =>
  message("status", { execution_state: state }, parent);
export const input = (parent: string, count: number): Message =>
  message("execute_input", { code: "code", execution_count: count }, parent);
export const stdout = (parent: string, text: string): Message =>
  message("stream", { name: "stdout", text }, parent);

/** The messages of a cell that ran to its end, with `outputs` between. */
export function ran(parent: string, count: number, ...outputs: Message[]): Message[] {
  return [status(parent, "busy"), input(parent, count), ...outputs, status(parent, "idle")];
}

export const LIMITS: TranscriptLimits = {
  max_cells: 500,
  max_outputs: 200,
  max_lines: 2000,
  max_line_chars: 10_000,
  max_bytes: 16 * 1024 * 1024,
};

export function transcript(
  cells: Partial<TranscriptJson["cells"][number]>[] = [],
  limits: Partial<TranscriptLimits> = {},
  last = "",
): TranscriptJson {
  return {
    cells: cells.map((c, i) => ({
      id: `t${i}`,
      code: "",
      origin: "zmq",
      client: "",
      state: "done",
      execution_count: i + 1,
      outputs: [],
      dropped_outputs: 0,
      ...c,
    })),
    last_msg_id: last,
    dropped_cells: 0,
    limits: { ...LIMITS, ...limits },
  };
}

/** What the reducer told its views, in order. */
export class Recorder implements Changes {
  added: string[] = [];
  changed: string[] = [];
  removed: string[] = [];
  states: string[] = [];
  notices: string[] = [];
  cellAdded(cell: Cell): void {
    this.added.push(cell.id);
  }
  cellChanged(cell: Cell): void {
    this.changed.push(cell.id);
  }
  cellsRemoved(cells: Cell[]): void {
    this.removed.push(...cells.map((c) => c.id));
  }
  kernelState(state: string): void {
    this.states.push(state);
  }
  notice(text: string): void {
    this.notices.push(text);
  }
}

/** A notebook loaded from `t` (default: empty, with the service's default limits). */
export function loaded(t: TranscriptJson = transcript()): { nb: Notebook; rec: Recorder } {
  const rec = new Recorder();
  const nb = new Notebook(rec);
  nb.load(t);
  return { nb, rec };
}

/** The text of a cell's stream outputs, as shown (complete lines and the partial one). */
export function shown(nb: Notebook, id: string): string[] {
  const cell = nb.cells.get(id);
  if (!cell) throw new Error(`no cell ${id}`);
  return cell.outputs.map((o) => {
    if (o.kind !== "stream") return `[${o.kind}]`;
    const lines = o.text.lines.map((l) => `${l}\n`).join("");
    return `${o.text.name}:${lines}${o.text.partial}`;
  });
}

/** A small seeded generator, so that a failure can be repeated. */
export function random(seed: number): () => number {
  let s = seed;
  return () => {
    s = (s * 1103515245 + 12345) % 2 ** 31;
    return s / 2 ** 31;
  };
}
