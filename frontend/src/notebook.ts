// The notebook page of one kernel (/kernels/{id}): load the transcript, draw it, then
// follow the kernel's WebSocket from the transcript's last message on.

import {
  ApiError,
  call,
  clearTranscript,
  getKernel,
  interruptKernel,
  kernelPath,
  loginUrl,
  restartKernel,
} from "./api";
import { baseUrl } from "./base";
import { type CompleteReply, InputEditor } from "./editor";
import { InputHistory } from "./history";
import { afterTranscript } from "./merge";
import { Pager } from "./pager";
import { type Message, fromCodePoints, parentId, toCodePoints } from "./protocol";
import { type Cell, type InputOutput, Notebook, type TranscriptJson } from "./reducer";
import { isolatedHtml } from "./render/isolate";
import { renderMime } from "./render/mime";
import { NotebookView } from "./render/notebookview";
import { WidgetHost, widgetModelId } from "./widgets/host";
import { type SocketState, KernelSocket } from "./ws";

const POLL_MS = 4000;
const REPLY_TIMEOUT_MS = 15_000;

const byId = <T extends HTMLElement = HTMLElement>(id: string): T =>
  document.getElementById(id) as T;

class NotebookPage {
  private readonly kernelId = document.body.dataset.kernelId ?? "";
  private readonly socket: KernelSocket;
  private readonly notebook: Notebook;
  private readonly view: NotebookView;
  private readonly editor: InputEditor;
  private readonly pager: Pager;
  private readonly history = new InputHistory();
  private readonly pending = new Map<string, (reply: Message) => void>();
  private readonly stateEl = byId("kernel-state");
  private readonly banner = byId("banner");
  private kernelState = "unknown";
  private socketState: SocketState = "connecting";
  private gone = false;
  private poller = 0;
  private held: Message[] | null = [];
  private readonly widgets: WidgetHost;

  constructor() {
    this.widgets = new WidgetHost(
      {
        send: (channel, type, content, metadata, buffers) =>
          this.socket.send(channel, type, content, undefined, { metadata, buffers }),
        drawMime: renderMime,
        drawHtml: (html) => isolatedHtml("widget-html-isolated", html),
      },
      (msg) => this.dispatch(msg),
    );
    this.view = new NotebookView(
      byId("cells"),
      {
        answerInput: (cell, output, value) => this.answerInput(cell, output, value),
        outputUrl: (cell) =>
          `${kernelPath(this.kernelId)}/transcript/cells/${encodeURIComponent(cell.id)}/output`,
        widgetView: (data, fallback) => {
          const id = widgetModelId(data);
          return id === null ? null : this.widgets.view(id, fallback);
        },
      },
      { kernelState: (state) => this.setKernelState(state) },
    );
    this.notebook = new Notebook(this.view);
    this.socket = new KernelSocket(this.kernelId, "", {
      message: (msg) => this.onMessage(msg),
      state: (state) => {
        this.socketState = state;
        this.showState();
        // The count of windows now includes this one.
        if (state === "open") window.setTimeout(() => void this.poll(), 300);
      },
    });
    this.pager = new Pager(byId("pager"), byId("pager-body"), byId("pager-close"), () =>
      this.editor.focus(),
    );
    this.editor = new InputEditor(byId("editor"), {
      run: (code) => this.run(code),
      complete: (code, pos) => this.complete(code, pos),
      inspect: (code, pos) => this.inspect(code, pos),
      escape: () => this.pager.close(),
      historyPrev: (current) => this.history.prev(current),
      historyNext: () => this.history.next(),
    });
    this.editor.focus();
    this.wireButtons();
  }

  /** The WebSocket first, then the transcript: the messages that arrive meanwhile are
   * held, and those after the transcript's last message applied, so nothing is missed
   * and nothing shown twice (also before the kernel's first message). */
  async start(): Promise<void> {
    this.socket.connect();
    await this.socket.opened(3000);
    let transcript: TranscriptJson;
    try {
      transcript = await call<TranscriptJson>("GET", `${kernelPath(this.kernelId)}/transcript`);
    } catch (e) {
      this.failed(e);
      return;
    }
    this.widgets.setState(transcript.widgets); // before the views: they draw its models
    this.notebook.load(transcript);
    const dropped = byId("dropped-cells");
    dropped.hidden = !transcript.dropped_cells;
    dropped.textContent = `${transcript.dropped_cells.toLocaleString("en-US")} earlier cells are no longer kept.`;
    for (const cell of this.notebook.cells.values()) this.history.add(cell.code);
    if (transcript.kernel?.execution_state) this.setKernelState(transcript.kernel.execution_state);
    this.setViewers(transcript.kernel?.connections);
    const held = this.held ?? [];
    this.held = null;
    const last = transcript.last_msg_id;
    if (!this.socket.isOpen) this.socket.restartFrom(last);
    else if (last && !held.some((m) => m.channel === "iopub")) this.socket.lastSeen = last;
    for (const msg of afterTranscript(held, last)) this.onMessage(msg);
    this.view.followOutput();
    void this.poll();
    addEventListener("online", () => this.socket.retryNow());
    document.addEventListener("visibilitychange", () => {
      if (!document.hidden) void this.poll();
    });
  }

  // -- messages ---------------------------------------------------------------------

  private onMessage(msg: Message): void {
    if (this.held) {
      this.held.push(msg); // until the transcript is drawn
      return;
    }
    this.widgets.handle(msg); // then dispatch, unless an Output widget takes it
  }

  private dispatch(msg: Message): void {
    if (msg.channel === "iopub") {
      this.notebook.apply(msg);
      return;
    }
    if (msg.channel === "stdin") {
      if (msg.header.msg_type === "input_request") this.notebook.inputRequest(msg);
      return;
    }
    const id = parentId(msg);
    const handler = id ? this.pending.get(id) : undefined;
    if (handler) {
      this.pending.delete(id as string);
      handler(msg);
    }
  }

  private request(channel: string, type: string, content: unknown): Promise<Message | null> {
    return new Promise((resolve) => {
      const id = this.socket.send(channel, type, content);
      const timer = window.setTimeout(() => {
        this.pending.delete(id);
        resolve(null);
      }, REPLY_TIMEOUT_MS);
      this.pending.set(id, (reply) => {
        window.clearTimeout(timer);
        resolve(reply);
      });
    });
  }

  // -- the input cell -----------------------------------------------------------------

  private run(code: string): void {
    const id = this.socket.send("shell", "execute_request", {
      code,
      silent: false,
      store_history: true,
      user_expressions: {},
      allow_stdin: true,
      stop_on_error: true,
    });
    this.notebook.request(id, code, this.socket.sessionId);
    this.pending.set(id, (reply) => this.executeReply(reply));
    this.history.add(code);
    this.view.followOutput();
  }

  private executeReply(reply: Message): void {
    for (const p of reply.content?.payload ?? []) {
      if (p?.source === "page") {
        const data = p.data ?? {};
        this.pager.show(String(data["text/plain"] ?? ""));
      } else if (p?.source === "set_next_input" && typeof p.text === "string") {
        if (!this.editor.code.trim()) this.editor.setCode(p.text);
      }
    }
  }

  private async complete(code: string, pos: number): Promise<CompleteReply | null> {
    const reply = await this.request("shell", "complete_request", {
      code,
      cursor_pos: toCodePoints(code, pos),
    });
    const c = reply?.content;
    if (!c || c.status !== "ok" || !Array.isArray(c.matches)) return null;
    const types: { type?: string }[] = c.metadata?._jupyter_types_experimental ?? [];
    return {
      matches: c.matches.map(String),
      from: fromCodePoints(code, c.cursor_start ?? pos),
      to: fromCodePoints(code, c.cursor_end ?? pos),
      types: c.matches.map((_: unknown, i: number) => types[i]?.type),
    };
  }

  private async inspect(code: string, pos: number): Promise<void> {
    const reply = await this.request("shell", "inspect_request", {
      code,
      cursor_pos: toCodePoints(code, pos),
      detail_level: 0,
    });
    const c = reply?.content;
    if (c?.found && c.data?.["text/plain"]) this.pager.show(String(c.data["text/plain"]));
    else this.say("No help found at the cursor.");
  }

  private answerInput(cell: Cell, output: InputOutput, value: string): void {
    this.socket.send("stdin", "input_reply", { value }, output.request.header);
    this.notebook.answerInput(cell, output, value);
    this.editor.focus();
  }

  // -- the toolbar ---------------------------------------------------------------------

  private wireButtons(): void {
    const id = this.kernelId;
    this.button("interrupt", () => interruptKernel(id));
    this.button("restart", async () => {
      this.say("Restarting the kernel…");
      await restartKernel(id);
      this.say("The kernel restarted: its variables are gone.");
    });
    this.button("clear", async () => {
      await clearTranscript(id);
      this.notebook.clear();
      byId("dropped-cells").hidden = true;
      this.view.clearNotices();
      this.say("Transcript cleared.");
    });
  }

  private button(id: string, action: () => Promise<unknown>): void {
    const el = byId<HTMLButtonElement>(id);
    el.addEventListener("click", async () => {
      try {
        await action();
      } catch (e) {
        this.failed(e);
      }
    });
  }

  // -- status ----------------------------------------------------------------------------

  private async poll(): Promise<void> {
    window.clearTimeout(this.poller);
    if (this.gone) return;
    try {
      const model = await getKernel(this.kernelId);
      this.setViewers(model.connections);
      // Status messages say more, and sooner; but a kernel that was starting when the
      // transcript was read may announce nothing when it is ready.
      const settled = !["unknown", "starting", "restarting"].includes(this.kernelState);
      if (this.socketState !== "open" || !settled) this.setKernelState(model.execution_state);
    } catch (e) {
      this.failed(e);
    }
    if (this.gone) return;
    // Quickly while the kernel starts (it says nothing when it is ready), then calmly.
    const settled = !["unknown", "starting", "restarting"].includes(this.kernelState);
    this.poller = window.setTimeout(() => void this.poll(), settled ? POLL_MS : 500);
  }

  private setViewers(n: number | undefined): void {
    if (typeof n !== "number") return;
    const el = byId("viewers");
    el.textContent = `${n} window${n === 1 ? "" : "s"}`;
    el.title = `${n} window${n === 1 ? " is" : "s are"} viewing this kernel`;
  }

  private setKernelState(state: string): void {
    this.kernelState = state;
    this.showState();
  }

  private showState(): void {
    let state = this.kernelState;
    if (this.gone) state = "gone";
    else if (this.socketState !== "open") state = this.socketState;
    this.stateEl.dataset.state = state;
    const label = this.stateEl.querySelector(".label");
    if (label) label.textContent = state === "reconnecting" ? "reconnecting…" : state;
    document.body.classList.toggle("kernel-busy", state === "busy");
  }

  private say(text: string, html?: Node): void {
    this.banner.replaceChildren(text, ...(html ? [" ", html] : []));
    this.banner.hidden = !text;
  }

  private failed(e: unknown): void {
    if (e instanceof ApiError && e.status === 401) {
      const link = document.createElement("a");
      link.href = loginUrl();
      link.textContent = "Log in again";
      this.say("You are logged out.", link);
      return;
    }
    if (e instanceof ApiError && e.status === 404) {
      this.gone = true;
      window.clearTimeout(this.poller);
      this.socket.stop();
      const link = document.createElement("a");
      link.href = baseUrl();
      link.textContent = "The running kernels";
      this.say("This kernel has been shut down.", link);
      this.showState();
      return;
    }
    this.say(`Failed: ${e instanceof Error ? e.message : String(e)}`);
  }
}

new NotebookPage().start();
