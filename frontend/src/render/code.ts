// A past cell's code, highlighted like the editor (same parser, same token classes)
// without the cost of an editor per cell.

import { pythonLanguage } from "@codemirror/lang-python";
import { classHighlighter, highlightCode } from "@lezer/highlight";

const MAX_HIGHLIGHT = 200_000; // characters; longer code is shown plain

export function codeBlock(code: string): HTMLPreElement {
  const pre = document.createElement("pre");
  pre.className = "code";
  if (code.length > MAX_HIGHLIGHT) {
    pre.textContent = code;
    return pre;
  }
  const tree = pythonLanguage.parser.parse(code);
  highlightCode(
    code,
    tree,
    classHighlighter,
    (text, classes) => {
      if (!classes) {
        pre.append(text);
        return;
      }
      const span = document.createElement("span");
      span.className = classes;
      span.textContent = text;
      pre.append(span);
    },
    () => pre.append("\n"),
  );
  return pre;
}
