// What the widget bundle (widgets.js, loaded when the first widget appears) gives the
// notebook page, and what the page gives it. Types only: both bundles import this.

import type { Message } from "../protocol";
import type { WidgetLink } from "./comms";
import type { DrawHtml, DrawMime } from "./outputs";

/** What the page lends the widget code: its socket, and how it draws outputs. */
export interface PageLink extends WidgetLink {
  drawMime: DrawMime;
  drawHtml: DrawHtml;
}

/** `application/vnd.jupyter.widget-view+json`: a view of the model `model_id`. */
export const WIDGET_VIEW_MIME = "application/vnd.jupyter.widget-view+json";

/** The widget-state+json document: every model at its current state. */
export interface WidgetState {
  state: Record<string, { model_name: string; model_module: string; model_module_version: string; state: object }>;
  version_major: number;
  version_minor: number;
}

export interface WidgetRuntime {
  /** Every message of the socket, in order: true if an Output widget took it. */
  handle(msg: Message): boolean;
  /** Create the models of a widget-state document (before their views are drawn). */
  setState(state: WidgetState): Promise<void>;
  /** Draw a view of `modelId` into `el`: false if the model does not come within `ms`. */
  render(modelId: string, el: HTMLElement, ms: number): Promise<boolean>;
}

export interface WidgetBundle {
  start(link: PageLink): WidgetRuntime;
}

declare global {
  interface Window {
    /** Set by widgets.js when it has loaded. */
    ipytwistWidgets?: WidgetBundle;
  }
}
