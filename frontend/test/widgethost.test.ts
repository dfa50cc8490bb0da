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

test("nothing loads for messages that are not a widget's; a widget's comm_open loads it", async () => {
  const log: string[] = [];
  const fake = fakeBundle(log);
  const host = new WidgetHost(link, fake.load);
  host.setState(STATE);
  host.handle(status("p", "busy"));
  host.handle(open("c0", "some.other.target"));
  host.handle(update("m1"));
  assert.equal(fake.loads(), 0);
  host.handle(open("c1"));
  host.handle(update("c1"));
  assert.equal(fake.loads(), 1);
  await host.start();
  host.handle(update("c1"));
  assert.equal(fake.loads(), 1);
  assert.deepEqual(log, ["state:m1", "comm_open:c0", "comm_msg:m1", "comm_open:c1", "comm_msg:c1", "comm_msg:c1"]);
});

test("replies reach the runtime while it creates the transcript's models; comms wait", async () => {
  const log: string[] = [];
  let finish = (): void => {};
  const fake = fakeBundle(log, new Promise((resolve) => (finish = resolve)));
  const host = new WidgetHost(link, fake.load);
  host.setState(STATE);
  const started = host.start();
  await new Promise((resolve) => setImmediate(resolve));
  host.handle(message("comm_info_reply", { comms: {} }, "info", "shell"));
  host.handle(update("m1"));
  assert.deepEqual(log, ["state:m1", "comm_info_reply:info"]);
  finish();
  await started;
  assert.deepEqual(log, ["state:m1", "comm_info_reply:info", "comm_msg:m1"]);
});

test("at most MAX_HELD comm messages wait for the widget code: the oldest are dropped", async () => {
  const log: string[] = [];
  const fake = fakeBundle(log);
  const host = new WidgetHost(link, fake.load);
  for (let i = 0; i < MAX_HELD + 3; i += 1) host.handle(update(`c${i}`));
  assert.equal(host.dropped, 3);
  await host.start();
  assert.equal(log.length, MAX_HELD);
  assert.equal(log[0], "comm_msg:c3");
});

test("widget code that fails to load: start gives null, and a malformed state is ignored", async () => {
  const host = new WidgetHost(link, () => Promise.reject(new Error("offline")));
  host.setState({ state: "nonsense" });
  host.setState(undefined);
  assert.equal(await host.start(), null);
});

test("a widget view output names its model", () => {
  const mime = "application/vnd.jupyter.widget-view+json";
  assert.equal(widgetModelId({ [mime]: { model_id: "abc", version_major: 2 } }), "abc");
  assert.equal(widgetModelId({ [mime]: { model_id: "" } }), null);
  assert.equal(widgetModelId({ [mime]: "abc" }), null);
  assert.equal(widgetModelId({ "text/plain": "x" }), null);
});

test("what the widget code says an Output widget took is not the cell's", async () => {
  const log: string[] = [];
  const host = new WidgetHost(link, fakeBundle(log).load);
  assert.equal(host.handle(message("stream", { name: "stdout", text: "x" }, "run")), false);
  await host.start();
  assert.equal(host.handle(message("stream", { name: "stdout", text: "x" }, "run")), true);
  assert.equal(host.handle(status("run", "idle")), false);
});
