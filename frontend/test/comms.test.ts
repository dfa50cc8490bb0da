// The comms of the page's widget manager: what the kernel sends reaches the right comm,
// what a comm sends goes out on shell, and replies reach the callbacks of what was sent.

import assert from "node:assert/strict";
import { test } from "node:test";
import { decodeBinaryFrame, encodeBinaryFrame } from "../src/protocol";
import { type Buffers, type Comm, CommRouter, MAX_CALLBACKS, MAX_EARLY } from "../src/widgets/comms";
import { message, status } from "./support";

interface Sent {
  channel: string;
  type: string;
  content: Record<string, unknown>;
  metadata?: Record<string, unknown>;
  buffers?: Buffers;
}

function router(): { router: CommRouter; sent: Sent[]; opened: Comm[] } {
  const sent: Sent[] = [];
  const opened: Comm[] = [];
  const link = {
    send(channel: string, type: string, content: unknown, metadata?: Record<string, unknown>, buffers?: Buffers) {
      sent.push({ channel, type, content: content as Record<string, unknown>, metadata, buffers });
      return `out${sent.length}`;
    },
  };
  return { router: new CommRouter(link, (comm) => opened.push(comm)), sent, opened };
}

test("the kernel's comm_open, comm_msg and comm_close reach the comm", () => {
  const { router: r, opened } = router();
  r.handle(message("comm_open", { comm_id: "c1", target_name: "jupyter.widget", data: {} }));
  assert.equal(opened.length, 1);
  assert.equal(opened[0].comm_id, "c1");
  assert.equal(opened[0].target_name, "jupyter.widget");
  const got: unknown[] = [];
  let closed = 0;
  opened[0].on_msg((m) => got.push(m.content.data));
  opened[0].on_close(() => (closed += 1));
  r.handle(message("comm_msg", { comm_id: "c1", data: { method: "update", state: { value: 7 } } }));
  r.handle(message("comm_msg", { comm_id: "other", data: {} })); // nobody's: ignored
  assert.deepEqual(got, [{ method: "update", state: { value: 7 } }]);
  r.handle(message("comm_close", { comm_id: "c1", data: {} }));
  assert.equal(closed, 1);
  assert.equal(r.comms.has("c1"), false);
  r.handle(message("comm_msg", { comm_id: "c1", data: { late: true } }));
  assert.equal(got.length, 1);
});

test("comm messages on other channels or without a comm id are not comms'", () => {
  const { router: r, opened } = router();
  r.handle(message("comm_open", { comm_id: "c1", target_name: "t" }, "", "shell"));
  r.handle(message("comm_open", { target_name: "t" }));
  r.handle(message("comm_open", { comm_id: 5, target_name: "t" }));
  assert.equal(opened.length, 0);
});

test("a comm sends comm_open, comm_msg and comm_close on shell, with metadata and buffers", () => {
  const { router: r, sent } = router();
  const comm = r.comm("c2", "jupyter.widget");
  const buf = new Uint8Array([1, 2, 3]);
  assert.equal(comm.open({ state: {} }, undefined, { version: "2.1.0" }), "out1");
  assert.equal(comm.send({ method: "update" }, undefined, undefined, [buf]), "out2");
  assert.deepEqual(sent[0], {
    channel: "shell",
    type: "comm_open",
    content: { comm_id: "c2", target_name: "jupyter.widget", data: { state: {} } },
    metadata: { version: "2.1.0" },
    buffers: undefined,
  });
  assert.equal(sent[1].type, "comm_msg");
  assert.deepEqual(sent[1].content, { comm_id: "c2", data: { method: "update" } });
  assert.deepEqual(sent[1].buffers, [buf]);
  comm.close();
  assert.equal(sent[2].type, "comm_close");
  assert.deepEqual(sent[2].content, { comm_id: "c2", data: {} });
  assert.equal(r.comms.has("c2"), false);
});

test("replies reach the callbacks of the message they answer, until its idle status", () => {
  const { router: r } = router();
  const comm = r.comm("c3", "jupyter.widget");
  const heard: string[] = [];
  const id = comm.send({}, {
    shell: { reply: (m) => heard.push(`reply:${m.header.msg_type}`) },
    iopub: {
      status: (m) => heard.push(`status:${m.content.execution_state}`),
      output: (m) => heard.push(`output:${m.header.msg_type}`),
      clear_output: () => heard.push("clear"),
    },
  });
  assert.equal(r.waiting, 1);
  r.handle(status(id, "busy"));
  r.handle(message("stream", { name: "stdout", text: "x" }, id));
  r.handle(message("clear_output", { wait: false }, id));
  r.handle(message("comm_msg_reply", {}, id, "shell"));
  r.handle(status("someone else", "idle"));
  assert.equal(r.waiting, 1);
  r.handle(status(id, "idle"));
  assert.equal(r.waiting, 0);
  r.handle(status(id, "busy")); // after idle: forgotten
  assert.deepEqual(heard, ["status:busy", "output:stream", "clear", "reply:comm_msg_reply", "status:idle"]);
});

test("at most MAX_CALLBACKS messages wait for replies: the oldest is forgotten", () => {
  const { router: r } = router();
  const comm = r.comm("c4", "jupyter.widget");
  let first = 0;
  const ids = [comm.send({}, { iopub: { status: () => (first += 1) } })];
  for (let i = 0; i < MAX_CALLBACKS + 4; i += 1) ids.push(comm.send({}, { iopub: {} }));
  assert.equal(r.waiting, MAX_CALLBACKS);
  r.handle(status(ids[0], "idle"));
  assert.equal(first, 0);
});

test("a binary frame carries a message's buffers, views at an offset included", () => {
  const msg = message("comm_msg", { comm_id: "c", data: { buffer_paths: [["a"], ["b"]] } }, "", "shell");
  const whole = new Uint8Array([9, 8, 7, 6, 5]);
  const frame = encodeBinaryFrame(msg, [new Uint8Array([1, 2]).buffer, new DataView(whole.buffer, 1, 3)]);
  const back = decodeBinaryFrame(frame);
  assert.deepEqual(back.content, msg.content);
  assert.equal(back.channel, "shell");
  assert.deepEqual(
    back.buffers.map((b) => Array.from(new Uint8Array(b as ArrayBuffer))),
    [[1, 2], [8, 7, 6]],
  );
});

test("a comm keeps what arrives before its model listens (at most MAX_EARLY), and its close", () => {
  const { router: r, opened } = router();
  r.handle(message("comm_open", { comm_id: "c5", target_name: "jupyter.widget", data: {} }));
  for (let i = 0; i < MAX_EARLY + 2; i += 1) {
    r.handle(message("comm_msg", { comm_id: "c5", data: { n: i } }));
  }
  r.handle(message("comm_close", { comm_id: "c5", data: {} }));
  const got: number[] = [];
  let closed = 0;
  opened[0].on_msg((m) => got.push(m.content.data.n));
  opened[0].on_close(() => (closed += 1));
  assert.equal(got.length, MAX_EARLY);
  assert.equal(got[0], 2);
  assert.equal(got[got.length - 1], MAX_EARLY + 1);
  assert.equal(closed, 1);
});
