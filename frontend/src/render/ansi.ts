// ANSI colours (terminal text, tracebacks, the pager) to HTML, with Jupyter's classes.

import { AnsiUp } from "ansi_up";

/** A converter that keeps its colour state between calls (one per stream). */
export function ansiConverter(): AnsiUp {
  const ansi = new AnsiUp();
  ansi.use_classes = true;
  return ansi;
}

export function ansiToHtml(text: string): string {
  return ansiConverter().ansi_to_html(text);
}

/** A <pre> showing `text` with its colours. */
export function ansiPre(text: string, className: string): HTMLPreElement {
  const pre = document.createElement("pre");
  pre.className = className;
  pre.innerHTML = ansiToHtml(text);
  return pre;
}
