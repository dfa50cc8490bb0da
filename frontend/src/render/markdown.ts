// text/markdown: marked, with $…$ / $$…$$ math by KaTeX. The HTML it makes is shown as
// an HTML output's is (./isolate.ts sanitises it).

import { Marked, type TokenizerAndRendererExtension } from "marked";
import { texToHtml } from "./math";

const blockMath: TokenizerAndRendererExtension = {
  name: "blockMath",
  level: "block",
  start: (src) => src.match(/\$\$|\\begin\{/)?.index,
  tokenizer(src) {
    const m = /^(?:\$\$([\s\S]+?)\$\$|(\\begin\{([a-zA-Z*]+)\}[\s\S]+?\\end\{\3\}))[^\S\n]*(?:\n|$)/.exec(src);
    if (m) return { type: "blockMath", raw: m[0], text: (m[1] ?? m[2]).trim() };
    return undefined;
  },
  renderer: (token) => `<div class="math-display">${texToHtml(token.text as string, true)}</div>`,
};

const inlineMath: TokenizerAndRendererExtension = {
  name: "inlineMath",
  level: "inline",
  start: (src) => src.match(/\$/)?.index,
  tokenizer(src) {
    const m = /^\$\$([^$]+?)\$\$|^\$([^$\n]+?)\$(?!\d)/.exec(src);
    if (m) return { type: "inlineMath", raw: m[0], text: m[1] ?? m[2], display: !!m[1] };
    return undefined;
  },
  renderer: (token) => texToHtml(token.text as string, Boolean(token.display)),
};

const marked = new Marked({ gfm: true, breaks: false, extensions: [blockMath, inlineMath] });

/** The HTML of `source`, not yet sanitised. */
export function markdownToHtml(source: string): string {
  return marked.parse(source, { async: false }) as string;
}
