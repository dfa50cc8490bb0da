// ANSI colours (terminal text, tracebacks, the pager) to HTML, with Jupyter's classes.

import { AnsiUp } from "ansi_up";

/** ansi_up writes a terminal hyperlink (OSC 8) as `<a href="...">`, and escapes all
 * else: its links open in a new tab without access to the page, as outputs' links do. */
class NewTabAnsiUp extends AnsiUp {
  ansi_to_html(txt: string): string {
    return super.ansi_to_html(txt).replace(/<a href="/g, '<a target="_blank" rel="noopener noreferrer" href="');
  }
}

/** A converter that keeps its colour state between calls (one per stream). */
export function ansiConverter(): AnsiUp {
  const ansi = new NewTabAnsiUp();
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
