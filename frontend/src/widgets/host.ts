// The notebook page's side of widgets: it loads the widget bundle (widgets.js and
// widgets.css) only when a widget view appears or the kernel opens a widget's comm, holds
// the comm messages that arrive meanwhile, and draws each widget view: a "widget
// loading" placeholder until its model exists, its text/plain if the model never comes.

import { baseUrl } from "../base";
import type { Message } from "../protocol";
import { type PageLink, WIDGET_VIEW_MIME, type WidgetBundle, type WidgetRuntime, type WidgetState } from "./runtime";

/** Comm messages held while the widget code loads (the oldest are dropped past it). */
export const MAX_HELD = 10_000;
/** How long a view waits for its model once the widget code runs. */
export const MODEL_WAIT_MS = 5000;

const COMM_TYPES = new Set(["comm_open", "comm_msg", "comm_close"]);

export function isWidgetComm(msg: Message): boolean {
  return msg.channel === "iopub" && COMM_TYPES.has(msg.header?.msg_type);
}

/** The model id of a widget view output, or null if `data` is not one. */
export function widgetModelId(data: Record<string, unknown>): string | null {
  const view = data[WIDGET_VIEW_MIME] as { model_id?: unknown } | undefined;
  return typeof view?.model_id === "string" && view.model_id ? view.model_id : null;
}

/** Adds widgets.js and widgets.css to the page; resolves once the script has run. */
export function loadBundle(base = `${baseUrl()}static/`): Promise<WidgetBundle> {
  const css = document.createElement("link");
  css.rel = "stylesheet";
  css.href = `${base}widgets.css`;
  document.head.append(css);
  return new Promise((resolve, reject) => {
    const script = document.createElement("script");
    script.src = `${base}widgets.js`;
    script.onload = () =>
      window.ipytwistWidgets ? resolve(window.ipytwistWidgets) : reject(new Error("no widgets"));
    script.onerror = () => reject(new Error("the widget code did not load"));
    document.head.append(script);
  });
}

export class WidgetHost {
  private runtime: WidgetRuntime | null = null;
  /** The runtime while it creates the transcript's models: it hears replies, not comms. */
  private booting: WidgetRuntime | null = null;
  private loading: Promise<WidgetRuntime | null> | null = null;
  private held: Message[] = [];
  private state: WidgetState | null = null;
  /** Held comm messages dropped for the bound (then models may be stale until updated). */
  dropped = 0;

  /** `pass` takes the messages that are not an Output widget's: the page's. */
  constructor(
    private readonly link: PageLink,
    private readonly pass: (msg: Message) => void,
    private readonly load: () => Promise<WidgetBundle> = loadBundle,
  ) {}

  /** The transcript's widget state: models to create before any view is drawn. */
  setState(state: unknown): void {
    const s = state as WidgetState | null | undefined;
    if (s && typeof s === "object" && s.state && typeof s.state === "object") this.state = s;
  }

  /** Every message of the socket, in order. Before the widget code runs, its comm
   * messages wait for it; while it loads, all of iopub waits (an Output widget may take
   * what follows its comm's update), and replies reach it as they come. */
  handle(msg: Message): void {
    if (this.runtime) {
      if (!this.runtime.handle(msg)) this.pass(msg);
      return;
    }
    const loading = this.loading !== null;
    if (msg.channel !== "iopub" || (!loading && !isWidgetComm(msg))) {
      this.booting?.handle(msg);
      this.pass(msg);
      return;
    }
    this.held.push(msg);
    if (this.held.length > MAX_HELD) {
      const oldest = this.held.shift() as Message;
      if (isWidgetComm(oldest)) this.dropped += 1;
      else this.pass(oldest);
    }
    if (msg.header.msg_type === "comm_open" && msg.content?.target_name === "jupyter.widget") {
      void this.start();
    }
  }

  /** The widget runtime, loaded on first call (null if it failed to load: then the
   * comm messages that waited are lost, the rest passed on, and the next call tries again). */
  start(): Promise<WidgetRuntime | null> {
    this.loading ??= this.load().then(
      async (bundle) => {
        const runtime = bundle.start(this.link);
        this.booting = runtime;
        if (this.state) await runtime.setState(this.state).catch(() => undefined);
        this.state = null;
        this.runtime = runtime;
        this.booting = null;
        for (const msg of this.held.splice(0)) if (!runtime.handle(msg)) this.pass(msg);
        return runtime;
      },
      () => {
        this.loading = null; // the next widget tries again
        for (const msg of this.held.splice(0)) if (!isWidgetComm(msg)) this.pass(msg);
        return null;
      },
    );
    return this.loading;
  }

  /** A widget view output: a placeholder now, the view when its model exists. */
  view(modelId: string, fallback: () => HTMLElement): HTMLElement {
    const el = document.createElement("div");
    el.className = "widget-area";
    const note = document.createElement("div");
    note.className = "widget-loading";
    note.textContent = "widget loading…";
    el.append(note);
    void this.start().then(async (runtime) => {
      const shown = runtime ? await runtime.render(modelId, el, MODEL_WAIT_MS) : false;
      if (shown) note.remove();
      else el.replaceChildren(fallback());
    });
    return el;
  }
}
