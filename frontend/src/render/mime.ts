// A mime bundle (display_data, execute_result) to an element: the richest type first,
// as Jupyter chooses.

import type { MimeBundle } from "../reducer";
import { ansiPre } from "./ansi";
import { isolatedHtml } from "./isolate";
import { markdownToHtml } from "./markdown";
import { latexToHtml } from "./math";
import { pickMime } from "./mimeorder";

export { MIME_ORDER, pickMime } from "./mimeorder";

const asText = (v: unknown): string => (Array.isArray(v) ? v.join("") : String(v ?? ""));

function div(className: string, html: string): HTMLElement {
  const el = document.createElement("div");
  el.className = className;
  el.innerHTML = html;
  return el;
}

function image(src: string, data: MimeBundle, meta: Record<string, unknown>): HTMLElement {
  const img = document.createElement("img");
  img.src = src;
  img.decoding = "async";
  const alt = data["text/plain"];
  img.alt = alt ? asText(alt) : "output image";
  for (const dim of ["width", "height"] as const) {
    const value = meta[dim];
    if (typeof value === "number" && value > 0) img[dim] = value;
  }
  if (meta.unconfined !== true) img.classList.add("confined");
  return img;
}

export function renderMime(
  data: MimeBundle,
  metadata: Record<string, unknown>,
): HTMLElement {
  const mime = pickMime(data);
  if (mime === undefined) return div("output-empty", "");
  const value = data[mime];
  const meta = ((metadata[mime] as Record<string, unknown>) ?? metadata) || {};
  switch (mime) {
    case "text/html":
      return isolatedHtml("output-html", asText(value));
    case "text/markdown":
      return isolatedHtml("output-markdown", markdownToHtml(asText(value)));
    case "text/latex":
      return div("output-latex", latexToHtml(asText(value)));
    case "image/svg+xml":
      return image(
        `data:image/svg+xml;charset=utf-8,${encodeURIComponent(asText(value))}`,
        data,
        meta,
      );
    case "application/json": {
      const pre = document.createElement("pre");
      pre.className = "output-json";
      pre.textContent = JSON.stringify(value, null, 2);
      return pre;
    }
    case "text/plain":
      return ansiPre(asText(value), "output-text");
    default: // images
      return image(`data:${mime};base64,${asText(value).replace(/\s+/g, "")}`, data, meta);
  }
}
