// The HTML of outputs (text/html, and the HTML that Markdown makes), drawn so that it
// cannot navigate the page, run script in it, read its cookie or cover its controls:
//
// - sanitised (DOMPurify): no script, event handler or javascript: URL; no meta, base,
//   link, form, frame, object or embed; no dialog, select, popover or command (they reach
//   the top layer, above the page); no SVG animation, <use> or foreignObject;
// - every link (HTML, SVG, image map) opens in a new tab without access to the page;
// - drawn in a shadow root: its <style> applies to it alone, its ids and names are not
//   the page's; the page's own styles apply to it, below its own (a cascade layer);
// - in a box with layout and paint containment: `position: fixed`, transforms and
//   negative margins stay inside the box.
//
// The page's Content-Security-Policy is the second wall (scripts from the page's origin
// only, never inline; images, fonts and styles from it or data: only; no frames,
// objects, forms or <base>). docs/internals.md, "Outputs on the page", says why.

import DOMPurify, { type Config } from "dompurify";

const purify = DOMPurify(window);

const CONFIG: Config & { RETURN_DOM_FRAGMENT: true } = {
  FORCE_BODY: true, // keep a leading <style> (it would be parsed into <head> and lost)
  RETURN_DOM_FRAGMENT: true,
  FORBID_TAGS: ["form", "dialog", "select", "datalist"],
  FORBID_ATTR: [
    "popover",
    "popovertarget",
    "popovertargetaction",
    "command",
    "commandfor",
    "interestfor",
    "autofocus",
    "accesskey",
  ],
};

purify.addHook("afterSanitizeAttributes", (node) => {
  const name = node.localName;
  if (name === "a" || name === "area") {
    node.setAttribute("target", "_blank");
    node.setAttribute("rel", "noopener noreferrer");
  }
});

/** `html` sanitised, as nodes to insert. */
export function sanitize(html: string): DocumentFragment {
  return purify.sanitize(html, CONFIG);
}

let pageRules: CSSStyleSheet | null = null;

/** The page's own style rules (fonts aside: those of the page apply), in a cascade layer
 * below the output's own <style>: one sheet, shared by every output. */
function pageSheet(): CSSStyleSheet {
  if (pageRules) return pageRules;
  const rules: string[] = [];
  for (const sheet of Array.from(document.styleSheets)) {
    let list: CSSRuleList;
    try {
      list = sheet.cssRules;
    } catch {
      continue; // not readable: not ours
    }
    for (const rule of Array.from(list)) {
      if (!(rule instanceof CSSFontFaceRule)) rules.push(rule.cssText);
    }
  }
  const sheet = new CSSStyleSheet();
  sheet.replaceSync(`@layer page {\n${rules.join("\n")}\n}`);
  if (rules.length) pageRules = sheet; // else the page's stylesheet is not there yet
  return sheet;
}

/** A box showing `html`, sanitised, in a shadow root, in an element of `className`. */
export function isolatedHtml(className: string, html: string): HTMLElement {
  const box = document.createElement("div");
  box.className = "output-isolated";
  const host = document.createElement("div");
  const root = host.attachShadow({ mode: "open" });
  root.adoptedStyleSheets = [pageSheet()];
  const body = document.createElement("div");
  body.className = className;
  body.append(sanitize(html));
  root.append(body);
  box.append(host);
  return box;
}
