// TeX with KaTeX: `text/latex` outputs and the math in Markdown.

import katex from "katex";

export function texToHtml(tex: string, display: boolean): string {
  return katex.renderToString(tex, {
    displayMode: display,
    throwOnError: false,
    output: "htmlAndMathml",
    trust: false,
    strict: "ignore",
  });
}

const escapeHtml = (s: string): string =>
  s.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);

// $$…$$, \[…\], \begin{env}…\end{env}: display; \(…\), $…$: inline.
const MATH =
  /\$\$([\s\S]+?)\$\$|\\\[([\s\S]+?)\\\]|(\\begin\{([a-zA-Z*]+)\}[\s\S]+?\\end\{\4\})|\\\(([\s\S]+?)\\\)|\$([^$\n]+?)\$/g;

/** LaTeX output as Jupyter shows it: the math typeset, any text around it kept. */
export function latexToHtml(source: string): string {
  let html = "";
  let last = 0;
  for (const m of source.matchAll(MATH)) {
    html += escapeHtml(source.slice(last, m.index));
    const display = m[1] ?? m[2] ?? m[3];
    html += display !== undefined ? texToHtml(display, true) : texToHtml(m[5] ?? m[6], false);
    last = (m.index ?? 0) + m[0].length;
  }
  const rest = source.slice(last);
  if (last === 0 && rest.trim()) return texToHtml(rest, true); // bare TeX
  return html + escapeHtml(rest);
}
