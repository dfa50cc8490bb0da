// Outputs inside widgets, drawn as the page draws outputs, and the Output widget's
// capture:
//
// - html-manager's registry would draw an Output widget's HTML trusted, in the page: we
//   give it the page's own renderer instead (sanitised, in a shadow root: isolate.ts), and
//   no JavaScript renderer at all;
// - while an Output widget's `msg_id` names a request, what that request outputs is the
//   widget's, not the cell's (as JupyterLab does it: the kernel sets `msg_id` on `with out:`).

import type { WidgetModel } from "@jupyter-widgets/base";
import type { OutputModel } from "@jupyter-widgets/html-manager/lib/output";
import type { IRenderMime } from "@jupyterlab/rendermime-interfaces";
import { Widget } from "@lumino/widgets";
import type { Message } from "../protocol";
import { MIME_ORDER } from "../render/mimeorder";

/** How the page draws a mime bundle (render/mime.ts's renderMime). */
export type DrawMime = (data: Record<string, unknown>, metadata: Record<string, unknown>) => HTMLElement;
/** How the page draws HTML from the kernel: sanitised, in a shadow root (isolate.ts). */
export type DrawHtml = (html: string) => HTMLElement;

interface HtmlViewLike {
  content: HTMLElement;
  model: { get(key: string): unknown };
  typeset(el: HTMLElement): void;
  update(): unknown;
}
// eslint-disable-next-line @typescript-eslint/no-explicit-any
type ViewClass = abstract new (...args: any[]) => HtmlViewLike;

/** The HTML and HTMLMath widgets (ipywidgets 7 and 8) set their value as the page's
 * innerHTML: these draw it as the page draws HTML outputs instead. */
export function isolatedHtmlView<C extends ViewClass>(Base: C, draw: DrawHtml, math: boolean): C {
  const grandparent = Object.getPrototypeOf(Base.prototype) as HtmlViewLike;
  abstract class IsolatedHtmlView extends Base {
    update(): unknown {
      this.content.replaceChildren(draw(String(this.model.get("value") ?? "")));
      if (math) this.typeset(this.content);
      return grandparent.update.call(this);
    }
  }
  return IsolatedHtmlView;
}

interface Registry {
  addFactory(factory: IRenderMime.IRendererFactory, rank?: number): void;
  removeMimeType(mimeType: string): void;
}

class PageRenderer extends Widget implements IRenderMime.IRenderer {
  constructor(private readonly draw: DrawMime) {
    super();
    this.addClass("widget-mime");
  }

  async renderModel(model: IRenderMime.IMimeModel): Promise<void> {
    this.node.replaceChildren(this.draw(model.data, model.metadata ?? {}));
  }
}

/** Outputs in widgets drawn by `draw`, preferring what the page prefers. */
export function usePageRenderers(registry: Registry, draw: DrawMime): void {
  registry.removeMimeType("application/javascript");
  MIME_ORDER.forEach((mime, i) => {
    const factory = { safe: true, mimeTypes: [mime], createRenderer: () => new PageRenderer(draw) };
    registry.addFactory(factory, 1 + i); // below html-manager's widget view (rank 0)
  });
}

const CAPTURED = new Set(["stream", "display_data", "execute_result", "error", "clear_output"]);

/** The Output widgets capturing a request's outputs. Which widget captures which request
 * is read from the comm messages as they arrive (a model applies its updates a moment
 * later: the outputs that follow `with out:` would reach the cell first). */
export class Captures {
  private readonly outputs = new Set<string>();
  private readonly byRequest = new Map<string, string>();
  private readonly requestOf = new Map<string, string>();
  private readonly chains = new Map<string, Promise<unknown>>();

  constructor(private readonly model: (modelId: string) => Promise<OutputModel>) {}

  /** A model made from a widget state: followed if it is an Output widget. */
  watch(model: WidgetModel): void {
    if (model.get("_model_name") !== "OutputModel" || this.outputs.has(model.model_id)) return;
    this.outputs.add(model.model_id);
    this.capture(model.model_id, model.get("msg_id"));
  }

  /** A message of the socket, before the widget code sees it. */
  observe(msg: Message): void {
    if (msg.channel !== "iopub") return;
    const id = msg.content?.comm_id;
    const data = msg.content?.data ?? {};
    const state = data.state ?? {};
    switch (msg.header?.msg_type) {
      case "comm_open":
        if (state._model_name === "OutputModel") {
          this.outputs.add(id);
          this.capture(id, state.msg_id);
        }
        break;
      case "comm_msg":
        if (this.outputs.has(id) && typeof state === "object" && "msg_id" in state) {
          this.capture(id, state.msg_id);
        }
        break;
      case "comm_close":
        this.capture(id, "");
        this.outputs.delete(id);
        break;
    }
  }

  private capture(modelId: string, request: unknown): void {
    const old = this.requestOf.get(modelId);
    if (old && this.byRequest.get(old) === modelId) this.byRequest.delete(old);
    this.requestOf.delete(modelId);
    if (typeof request === "string" && request) {
      this.byRequest.set(request, modelId);
      this.requestOf.set(modelId, request);
    }
  }

  /** True if an Output widget took `msg` (then the cell does not show it). */
  take(msg: Message): boolean {
    if (msg.channel !== "iopub" || !CAPTURED.has(msg.header?.msg_type)) return false;
    const parent = msg.parent_header?.msg_id;
    const modelId = parent ? this.byRequest.get(parent) : undefined;
    if (!modelId) return false;
    const type = msg.header.msg_type;
    const add = (output: OutputModel): void => {
      if (type === "clear_output") output.clear_output(Boolean(msg.content?.wait));
      else output.outputs.add({ ...msg.content, output_type: type });
      output.set("outputs", output.outputs.toJSON(), { newMessage: true });
      output.save_changes();
    };
    const before = this.chains.get(modelId) ?? Promise.resolve();
    const after = before.then(() => this.model(modelId)).then(add, () => undefined);
    this.chains.set(modelId, after);
    void after.then(() => {
      if (this.chains.get(modelId) === after) this.chains.delete(modelId);
    });
    return true;
  }
}
