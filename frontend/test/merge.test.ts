// The transcript, then what the WebSocket brought while it loaded, then live messages:
// nothing missed, nothing shown twice.

import assert from "node:assert/strict";
import { test } from "node:test";
import { afterTranscript } from "../src/merge";
import type { Message } from "../src/protocol";
import { loaded, message, shown, status, stdout, transcript } from "./support";

const ids = (messages: Message[]): string[] => messages.map((m) => m.header.msg_id);

test("of the held messages, the iopub ones after the transcript's last are applied", () => {
  const [a, b, c] = [stdout("r", "a"), stdout("r", "b"), stdout("r", "c")];
  const reply = message("execute_reply", { status: "ok" }, "r", "shell");
  const asked = message("input_request", { prompt: "" }, "r", "stdin");
  const held = [a, reply, b, asked, c];
  assert.deepEqual(ids(afterTranscript(held, b.header.msg_id)), ids([reply, asked, c]));
  assert.deepEqual(ids(afterTranscript(held, c.header.msg_id)), ids([reply, asked]));
});

test("when the transcript's last message came before the socket opened, all are new", () => {
  const held = [stdout("r", "a"), stdout("r", "b")];
  assert.deepEqual(ids(afterTranscript(held, "earlier")), ids(held));
  assert.deepEqual(ids(afterTranscript(held, "")), ids(held));
  assert.deepEqual(afterTranscript([], "earlier"), []);
});

test("a cell's output is whole and once: transcript, held, then live", () => {
  // The kernel printed 1 to 6; the transcript was read after 3, the socket opened
  // before 2, and 5 and 6 came once the transcript was drawn.
  const lines = [1, 2, 3, 4, 5, 6].map((i) => stdout("r", `${i}\n`));
  const { nb } = loaded(
    transcript(
      [{ id: "r", state: "running", outputs: [{ output_type: "stream", name: "stdout", text: "1\n2\n3\n" }] }],
      {},
      lines[2].header.msg_id,
    ),
  );
  for (const m of afterTranscript(lines.slice(1, 4), lines[2].header.msg_id)) nb.apply(m);
  for (const m of [...lines.slice(4), status("r", "idle")]) nb.apply(m);
  assert.deepEqual(shown(nb, "r"), ["stdout:1\n2\n3\n4\n5\n6\n"]);
  assert.equal(nb.cells.get("r")?.state, "done");
});
