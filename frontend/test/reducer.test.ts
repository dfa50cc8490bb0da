// The reducer: the transcript's rules (ipytwist/kernel/transcript.py) applied by the page
// to the messages that follow the transcript it loaded.

import assert from "node:assert/strict";
import { test } from "node:test";
import type { RichOutput } from "../src/reducer";
import {
  input,
  loaded,
  message,
  ran,
  shown,
  status,
  stdout,
  transcript,
} from "./support";

const display = (parent: string, text: string, id?: string) =>
  message(
    "display_data",
    { data: { "text/plain": text }, metadata: {}, transient: id ? { display_id: id } : {} },
    parent,
  );
const plain = (o: unknown): unknown => (o as RichOutput).data["text/plain"];

test("a cell goes queued, running, done, and views hear of each step", () => {
  const { nb, rec } = loaded();
  const cell = nb.request("r", "1 + 1", "me");
  assert.equal(cell.state, "queued");
  assert.deepEqual(rec.added, ["r"]);
  nb.apply(status("r", "busy"));
  assert.equal(cell.state, "running");
  nb.apply(input("r", 7));
  assert.equal(cell.executionCount, 7);
  nb.apply(status("r", "idle"));
  assert.equal(cell.state, "done");
  assert.deepEqual(rec.states, ["busy", "idle"]);
  assert.deepEqual(rec.changed, ["r", "r", "r"]);
});

test("a cell that ends before it ran is aborted; errors and interrupts are their own", () => {
  const { nb } = loaded();
  const never = nb.request("never", "x", "me");
  nb.apply(status("never", "idle"));
  assert.equal(never.state, "aborted");
  const failed = nb.request("failed", "1/0", "me");
  const stopped = nb.request("stopped", "sleep", "me");
  const err = (parent: string, ename: string) =>
    message("error", { ename, evalue: "", traceback: ["tb"] }, parent);
  for (const m of ran("failed", 1, err("failed", "ZeroDivisionError"))) nb.apply(m);
  for (const m of ran("stopped", 2, err("stopped", "KeyboardInterrupt"))) nb.apply(m);
  assert.equal(failed.state, "error");
  assert.equal(stopped.state, "interrupted");
  assert.deepEqual(failed.outputs.map((o) => o.kind), ["error"]);
});

test("clear_output clears at once, or with wait at the next output", () => {
  const { nb } = loaded();
  nb.request("r", "clear", "me");
  nb.apply(stdout("r", "old\n"));
  nb.apply(message("clear_output", { wait: false }, "r"));
  assert.deepEqual(shown(nb, "r"), []);
  nb.apply(stdout("r", "mid\n"));
  nb.apply(message("clear_output", { wait: true }, "r"));
  assert.deepEqual(shown(nb, "r"), ["stdout:mid\n"]);
  nb.apply(display("r", "new"));
  const cell = nb.cells.get("r");
  assert.deepEqual(cell?.outputs.map(plain), ["new"]);
  nb.apply(stdout("r", "after\n"));
  assert.deepEqual(shown(nb, "r"), ["[rich]", "stdout:after\n"]);
});

test("clear_output keeps an input() the kernel still waits for; idle drops it", () => {
  const { nb } = loaded();
  const cell = nb.request("r", "input()", "me");
  nb.apply(stdout("r", "asking\n"));
  nb.inputRequest(message("input_request", { prompt: "? ", password: false }, "r", "stdin"));
  nb.apply(message("clear_output", { wait: false }, "r"));
  assert.deepEqual(cell.outputs.map((o) => o.kind), ["input"]);
  nb.apply(status("r", "idle"));
  assert.deepEqual(cell.outputs, []);
});

test("update_display_data replaces a display in every cell that shows it", () => {
  const { nb, rec } = loaded();
  nb.request("a", "d = display('v1', display_id=True)", "me");
  for (const m of ran("a", 1, display("a", "v1", "d"), display("a", "other", "e"))) nb.apply(m);
  nb.request("b", "d.update('v2')", "me");
  rec.changed = [];
  const update = message(
    "update_display_data",
    { data: { "text/plain": "v2" }, metadata: {}, transient: { display_id: "d" } },
    "b",
  );
  for (const m of ran("b", 2, update)) nb.apply(m);
  const [first, second] = [nb.cells.get("a"), nb.cells.get("b")];
  assert.deepEqual(first?.outputs.map(plain), ["v2", "other"]);
  assert.equal((first?.outputs[0] as RichOutput).version, 1);
  assert.equal((first?.outputs[1] as RichOutput).version, 0);
  assert.deepEqual(second?.outputs, []);
  assert.ok(rec.changed.includes("a"));
});

test("update_display_data for a display that was cleared changes nothing", () => {
  const { nb, rec } = loaded();
  nb.request("a", "x", "me");
  nb.apply(display("a", "v1", "d"));
  nb.apply(message("clear_output", { wait: false }, "a"));
  rec.changed = [];
  const update = { data: { "text/plain": "v2" }, metadata: {}, transient: { display_id: "d" } };
  nb.apply(message("update_display_data", update, "a"));
  nb.apply(message("update_display_data", update, "a"));
  assert.deepEqual(nb.cells.get("a")?.outputs, []);
  assert.deepEqual(rec.changed, []);
});

test("a stream's messages join into one output until another output comes", () => {
  const { nb } = loaded();
  nb.request("r", "print", "me");
  nb.apply(stdout("r", "a"));
  nb.apply(stdout("r", "b\nc"));
  nb.apply(message("stream", { name: "stderr", text: "e\n" }, "r"));
  nb.apply(stdout("r", "d\n"));
  assert.deepEqual(shown(nb, "r"), ["stdout:ab\nc", "stderr:e\n", "stdout:d\n"]);
});

test("a progress bar drawn with \\r across messages shows its last state", () => {
  const { nb } = loaded();
  nb.request("r", "bar", "me");
  for (let i = 0; i <= 100; i += 10) nb.apply(stdout("r", `\r${String(i).padStart(3)}%`));
  assert.deepEqual(shown(nb, "r"), ["stdout:100%"]);
  nb.apply(stdout("r", "\ndone\n"));
  assert.deepEqual(shown(nb, "r"), ["stdout:100%\ndone\n"]);
});

test("the cell limit comes from the transcript: the oldest cells go", () => {
  const { nb, rec } = loaded(transcript([{ id: "old" }], { max_cells: 3 }));
  for (const id of ["a", "b", "c"]) nb.request(id, id, "me");
  assert.deepEqual([...nb.cells.keys()], ["a", "b", "c"]);
  assert.deepEqual(rec.removed, ["old"]);
  const other = loaded(transcript([{ id: "old" }], { max_cells: 4 }));
  for (const id of ["a", "b", "c"]) other.nb.request(id, id, "me");
  assert.deepEqual([...other.nb.cells.keys()], ["old", "a", "b", "c"]);
});

test("the output limit comes from the transcript, and the dropped are counted", () => {
  const { nb } = loaded(transcript([], { max_outputs: 2 }));
  const cell = nb.request("r", "many", "me");
  for (let i = 0; i < 5; i += 1) nb.apply(display("r", `o${i}`));
  assert.deepEqual(cell.outputs.map(plain), ["o3", "o4"]);
  assert.equal(cell.droppedOutputs, 3);
});

test("the line cut comes from the transcript", () => {
  for (const [limit, expected] of [
    [5, "abcde ... [5 characters hidden]"],
    [8, "abcdefgh ... [2 characters hidden]"],
  ] as const) {
    const { nb } = loaded(transcript([], { max_line_chars: limit }));
    nb.request("r", "long", "me");
    nb.apply(stdout("r", "abcdefghij\n"));
    assert.deepEqual(shown(nb, "r"), [`stdout:${expected}\n`]);
  }
});

test("a transcript's cells load with their outputs, then follow live messages", () => {
  const { nb, rec } = loaded(
    transcript([
      {
        id: "a",
        state: "running",
        dropped_outputs: 4,
        outputs: [
          { output_type: "display_data", data: { "text/plain": "v1" }, metadata: {}, transient: { display_id: "d" } },
          { output_type: "unknown" },
          { output_type: "stream", name: "stdout", text: "0\n... [5 lines hidden] ...\n6\n7", hidden_lines: 5 },
        ],
      },
      { id: "b", outputs: [{ output_type: "error", ename: "E", evalue: "v", traceback: ["t"] }] },
    ]),
  );
  assert.deepEqual(rec.added, ["a", "b"]);
  const a = nb.cells.get("a");
  assert.equal(a?.droppedOutputs, 4);
  assert.equal(nb.cells.get("b")?.outputs[0].kind, "error");
  nb.apply(
    message("update_display_data", { data: { "text/plain": "v2" }, metadata: {}, transient: { display_id: "d" } }),
  );
  assert.deepEqual(a?.outputs.map((o) => (o.kind === "rich" ? plain(o) : o.kind)), ["v2", "stream"]);
  nb.apply(message("stream", { name: "stdout", text: "7\n8\n" }, "a"));
  assert.deepEqual(shown(nb, "a"), ["[rich]", "stdout:0\n... [5 lines hidden] ...\n6\n77\n8\n"]);
  const stream = a?.outputs[1];
  assert.deepEqual(stream?.kind === "stream" && [stream.text.elided, stream.text.elidedAt], [5, 1]);
});

test("a cell another client runs appears with its count; stray notices are said", () => {
  const { nb, rec } = loaded();
  nb.apply(message("execute_input", { code: "x = 1", execution_count: 3 }, "theirs"));
  const cell = nb.cells.get("theirs");
  assert.deepEqual([cell?.code, cell?.state, cell?.executionCount, cell?.origin], ["x = 1", "running", 3, "other"]);
  nb.apply(stdout("nobody", "ignored\n"));
  nb.apply(message("stream", { name: "stderr", text: "[ipytwist] 3 output messages dropped" }, "nobody"));
  assert.deepEqual(rec.notices, ["[ipytwist] 3 output messages dropped"]);
  assert.deepEqual([...nb.cells.keys()], ["theirs"]);
});

test("a message replayed after a reconnect is not applied twice", () => {
  const { nb } = loaded();
  nb.request("r", "print", "me");
  const first = stdout("r", "once\n");
  const second = stdout("r", "twice\n");
  for (const m of [first, second, first, second]) nb.apply(m);
  assert.deepEqual(shown(nb, "r"), ["stdout:once\ntwice\n"]);
});

test("a debug_request's busy and idle leave the kernel's state alone", () => {
  const { nb, rec } = loaded();
  nb.request("r", "f()", "me");
  nb.apply(status("r", "busy"));
  for (const state of ["busy", "idle"]) {
    const m = status("d", state);
    m.parent_header = { msg_id: "d", msg_type: "debug_request" };
    nb.apply(m);
  }
  assert.deepEqual(rec.states, ["busy"]);
});
