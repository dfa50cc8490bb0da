// The page's side of widgets: the widget code loads when a widget comm opens, comm
// messages wait for it (bounded), the transcript's state comes first, replies reach it
// while it creates that state.

import assert from "node:assert/strict";
import { test } from "node:test";
import type { Message } from "../src/protocol";
import { MAX_HELD, WidgetHost, widgetModelId } from "../src/widgets/host";
import type { WidgetBundle, WidgetRuntime, WidgetState } from "../src/widgets/runtime";
import { message, status } from "./support";

const link = { send: () => "x", drawMime: () => ({}) as HTMLElement, drawHtml: () => ({}) as HTMLElement };
const STATE: WidgetState = {
  state: { m1: { model_name: "IntSliderModel", model_module: "@jupyter-widgets/controls", model_module_version: "2.0.0", state: {} } },
  version_major: 2,
  version_minor: 0,
};

function fakeBundle(log: string[], stateDone: Promise<void> = Promise.resolve()) {
  let loads = 0;
  const runtime: WidgetRuntime = {
    handle: (m: Message) => {
      log.push(`${m.header.msg_type}:${m.content?.comm_id ?? m.parent_header.msg_id ?? ""}`);
      return m.header.msg_type === "stream";
    },
    setState: async (s) => {
      log.push(`state:${Object.keys(s.state).join(",")}`);
      await stateDone;
    },
    render: async () => true,
  };
  const bundle: WidgetBundle = { start: () => runtime };
  return { load: async () => ((loads += 1), bundle), loads: () => loads };
}

const open = (id: string, target = "jupyter.widget") =>
  message("comm_open", { comm_id: id, target_name: target, data: {} });
const update = (id: string) => message("comm_msg", { comm_id: id, data: {} });
const name = (m: Message) => `${m.header.msg_type}:${m.content?.comm_id ?? m.parent_header.msg_id ?? ""}`;

function host(load: () => Promise<WidgetBundle>): { host: WidgetHost; passed: string[] } {
  const passed: string[] = [];
  return { host: new WidgetHost(link, (m) => passed.push(name(m)), load), passed };
}

test("nothing loads for messages that are not a widget's; a widget's comm_open loads it", async () => {
  const log: string[] = [];
  const fake = fakeBundle(log);
  const { host: h, passed } = host(fake.load);
  h.setState(STATE);
  h.handle(status("p", "busy"));
  h.handle(open("c0", "some.other.target"));
  h.handle(update("m1"));
  assert.equal(fake.loads(), 0);
  assert.deepEqual(passed, ["status:p"]);
  h.handle(open("c1"));
  h.handle(update("c1"));
  h.handle(status("p", "idle")); // waits with the comms while the widget code loads
  assert.equal(fake.loads(), 1);
  assert.deepEqual(passed, ["status:p"]);
  await h.start();
  h.handle(update("c1"));
  assert.equal(fake.loads(), 1);
  const comms = ["comm_open:c0", "comm_msg:m1", "comm_open:c1", "comm_msg:c1", "status:p", "comm_msg:c1"];
  assert.deepEqual(log, ["state:m1", ...comms]);
  assert.deepEqual(passed, ["status:p", ...comms]);
});

test("replies reach the runtime while it creates the transcript's models; iopub waits", async () => {
  const log: string[] = [];
  let finish = (): void => {};
  const fake = fakeBundle(log, new Promise((resolve) => (finish = resolve)));
  const { host: h, passed } = host(fake.load);
  h.setState(STATE);
  const started = h.start();
  await new Promise((resolve) => setImmediate(resolve));
  h.handle(message("comm_info_reply", { comms: {} }, "info", "shell"));
  h.handle(update("m1"));
  h.handle(message("stream", { name: "stdout", text: "x" }, "run"));
  assert.deepEqual(log, ["state:m1", "comm_info_reply:info"]);
  assert.deepEqual(passed, ["comm_info_reply:info"]);
  finish();
  await started;
  assert.deepEqual(log, ["state:m1", "comm_info_reply:info", "comm_msg:m1", "stream:run"]);
  assert.deepEqual(passed, ["comm_info_reply:info", "comm_msg:m1"]); // the stream: taken
});

test("at most MAX_HELD messages wait for the widget code: comms dropped, the rest passed", async () => {
  const log: string[] = [];
  const { host: h, passed } = host(fakeBundle(log).load);
  void h.start();
  h.handle(message("execute_input", { code: "" }, "first"));
  for (let i = 0; i < MAX_HELD + 3; i += 1) h.handle(update(`c${i}`));
  assert.equal(h.dropped, 3);
  assert.deepEqual(passed, ["execute_input:first"]);
  await h.start();
  assert.equal(log.length, MAX_HELD);
  assert.equal(log[0], "comm_msg:c3");
});

test("widget code that fails to load: what waited is passed on, a malformed state ignored", async () => {
  const { host: h, passed } = host(() => Promise.reject(new Error("offline")));
  h.setState({ state: "nonsense" });
  h.setState(undefined);
  h.handle(open("c1"));
  h.handle(message("stream", { name: "stdout", text: "x" }, "run"));
  assert.equal(await h.start(), null);
  assert.deepEqual(passed, ["stream:run"]);
  h.handle(status("run", "idle"));
  assert.deepEqual(passed, ["stream:run", "status:run"]);
});

test("a widget view output names its model", () => {
  const mime = "application/vnd.jupyter.widget-view+json";
  assert.equal(widgetModelId({ [mime]: { model_id: "abc", version_major: 2 } }), "abc");
  assert.equal(widgetModelId({ [mime]: { model_id: "" } }), null);
  assert.equal(widgetModelId({ [mime]: "abc" }), null);
  assert.equal(widgetModelId({ "text/plain": "x" }), null);
});
