// widgets.js: the widget manager of the notebook page, loaded when the first widget
// appears. It is html-manager's HTMLManager (the models and views of ipywidgets 7 and 8,
// the Output widget, and ipympl's figures) with comms over the page's kernel WebSocket (comms.ts).

import { type IClassicComm, put_buffers } from "@jupyter-widgets/base";
import { HTMLManager } from "@jupyter-widgets/html-manager/lib/htmlmanager";
import * as matplotlib from "jupyter-matplotlib";
import "jupyter-matplotlib/css/mpl_widget.css";
import type { Message } from "../protocol";
import { uuid } from "../protocol";
import { type Comm, CommRouter } from "./comms";
import { Captures, isolatedHtmlView, usePageRenderers } from "./outputs";
import type { PageLink, WidgetRuntime, WidgetState } from "./runtime";

const COMM_INFO_MS = 5000;

function fromBase64(data: string): ArrayBuffer {
  const text = atob(data);
  const bytes = new Uint8Array(text.length);
  for (let i = 0; i < text.length; i += 1) bytes[i] = text.charCodeAt(i);
  return bytes.buffer;
}

class PageManager extends HTMLManager {
  private readonly waiters = new Map<string, (() => void)[]>();

  readonly captures = new Captures((id) => this.get_model(id) as Promise<never>);

  private readonly isolated = new Map<unknown, unknown>();
  private readonly modelIds = new Set<string>();

  constructor(
    private readonly router: CommRouter,
    private readonly link: PageLink,
  ) {
    // Beyond ipywidgets' own modules: ipympl's figures (%matplotlib widget).
    super({
      loader: (name: string) =>
        name === "jupyter-matplotlib"
          ? Promise.resolve(matplotlib)
          : Promise.reject(new Error(`no widget module ${name}`)),
    });
    usePageRenderers(this.renderMime, link.drawMime);
  }

  /** ipywidgets' classes, the HTML widgets' views drawing their value as the page draws
   * HTML (sanitised, in a shadow root), not as the page's own HTML. */
  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  protected async loadClass(className: string, moduleName: string, moduleVersion: string): Promise<any> {
    const cls = await super.loadClass(className, moduleName, moduleVersion);
    const html = className === "HTMLView" || className === "HTMLMathView";
    if (moduleName !== "@jupyter-widgets/controls" || !html) return cls;
    let safe = this.isolated.get(cls);
    if (!safe) {
      safe = isolatedHtmlView(cls as never, this.link.drawHtml, className === "HTMLMathView");
      this.isolated.set(cls, safe);
    }
    return safe;
  }

  register_model(modelId: string, modelPromise: Promise<never>): void {
    super.register_model(modelId, modelPromise);
    this.modelIds.add(modelId);
    modelPromise.then((model) => this.captures.watch(model), () => undefined);
    for (const wake of this.waiters.get(modelId)?.splice(0) ?? []) wake();
    this.waiters.delete(modelId);
  }

  /** The kernel restarted: its widgets are gone (their views too), none told. */
  async closeAll(): Promise<void> {
    for (const id of [...this.router.comms.keys()]) this.router.forget(id);
    const ids = [...this.modelIds].filter((id) => this.has_model(id));
    this.modelIds.clear();
    const models = await Promise.allSettled(ids.map((id) => this.get_model(id)));
    for (const m of models) if (m.status === "fulfilled") await m.value.close(true);
  }

  /** Resolves true once the model `modelId` is registered, false after `ms`. */
  until(modelId: string, ms: number): Promise<boolean> {
    if (this.has_model(modelId)) return Promise.resolve(true);
    return new Promise((resolve) => {
      const wake = (): void => resolve(true);
      const list = this.waiters.get(modelId) ?? [];
      list.push(wake);
      this.waiters.set(modelId, list);
      window.setTimeout(() => {
        const left = this.waiters.get(modelId)?.filter((w) => w !== wake) ?? [];
        if (left.length) this.waiters.set(modelId, left);
        else this.waiters.delete(modelId);
        resolve(false);
      }, ms);
    });
  }

  /** The models of a widget-state document, live (with their comm) if the kernel holds
   * their comm. (ManagerBase.set_state means to do this, but tests for a comm named
   * "model_id" rather than the model's id, so every model it makes is dead.) */
  async loadState(doc: WidgetState): Promise<void> {
    const live = await this._get_comm_info();
    const made = Object.entries(doc.state ?? {}).map(([modelId, model]) => {
      if (this.has_model(modelId)) return Promise.resolve();
      const state = (model.state ?? {}) as Record<string, unknown>;
      const buffers = (model as { buffers?: { path: (string | number)[]; data: string }[] }).buffers;
      if (Array.isArray(buffers) && buffers.length) {
        const views = buffers.map((b) => new DataView(fromBase64(b.data)));
        put_buffers(state as never, buffers.map((b) => b.path), views);
      }
      const comm = Object.prototype.hasOwnProperty.call(live, modelId) ? this.router.comm(modelId, this.comm_target_name) : undefined;
      const options = {
        model_id: modelId,
        model_name: model.model_name,
        model_module: model.model_module,
        model_module_version: model.model_module_version,
        comm: comm as unknown as IClassicComm | undefined,
      };
      return this.new_model(options, state).then(() => undefined);
    });
    await Promise.allSettled(made);
  }

  async _create_comm(
    target: string,
    modelId?: string,
    data?: object,
    metadata?: object,
    buffers?: ArrayBuffer[] | ArrayBufferView[],
  ): Promise<IClassicComm> {
    const comm = this.router.comm(modelId ?? uuid(), target);
    if (data !== undefined) comm.open(data, undefined, metadata, buffers);
    return comm as unknown as IClassicComm;
  }

  /** The kernel's open widget comms (comm_info_request), so that the transcript's models
   * are live; none if the kernel does not answer in time. */
  _get_comm_info(): Promise<object> {
    return new Promise((resolve) => {
      const timer = window.setTimeout(() => resolve({}), COMM_INFO_MS);
      const reply = (msg: Message): void => {
        window.clearTimeout(timer);
        resolve((msg.content?.comms as object) ?? {});
      };
      const content = { target_name: this.comm_target_name };
      this.router.request("shell", "comm_info_request", content, { shell: { reply } });
    });
  }
}

function start(link: PageLink): WidgetRuntime {
  let manager: PageManager | null = null;
  const router = new CommRouter(link, (comm: Comm, msg: Message) => {
    if (comm.target_name !== manager?.comm_target_name) return;
    // eslint-disable-next-line @typescript-eslint/no-explicit-any
    manager.handle_comm_open(comm as unknown as IClassicComm, msg as any).catch(() => undefined);
  });
  manager = new PageManager(router, link);
  const m = manager;
  return {
    handle: (msg) => {
      if (msg.channel === "iopub" && msg.header?.msg_type === "status") {
        if (msg.content?.execution_state === "restarting") void m.closeAll();
      }
      m.captures.observe(msg);
      router.handle(msg);
      return m.captures.take(msg);
    },
    setState: async (state: WidgetState) => {
      await m.loadState(state);
    },
    render: async (modelId, el, ms) => {
      if (!(await m.until(modelId, ms))) return false;
      try {
        const model = await m.get_model(modelId);
        const view = await m.create_view(model, {});
        await m.display_view(view, el);
        return true;
      } catch {
        return false;
      }
    },
  };
}

window.ipytwistWidgets = { start };
