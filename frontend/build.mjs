// Bundles the pages' scripts and styles into ../ipytwist/web/static/ (committed), and
// lists the bundled libraries with their licenses (LICENSES.md here, and the full
// texts in static/THIRD-PARTY-LICENSES.txt, shipped with the package).
//
//   cd frontend && npm ci && npm run build

import { readFileSync, readdirSync, rmSync, mkdirSync, copyFileSync, writeFileSync, existsSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import * as esbuild from "esbuild";

const here = dirname(fileURLToPath(import.meta.url));
const out = join(here, "..", "ipytwist", "web", "static");

// KaTeX's stylesheet lists woff2, woff and ttf fonts; every browser we serve reads woff2.
const woff2Only = {
  name: "katex-woff2-only",
  setup(build) {
    build.onLoad({ filter: /katex[\\/]dist[\\/]katex\.css$/ }, (args) => {
      const css = readFileSync(args.path, "utf8").replace(
        /,\s*url\([^)]*\.woff\) format\("woff"\)|,\s*url\([^)]*\.ttf\) format\("truetype"\)/g,
        "",
      );
      return { contents: css, loader: "css" };
    });
  },
};

rmSync(out, { recursive: true, force: true });
mkdirSync(out, { recursive: true });

const common = {
  bundle: true,
  minify: true,
  legalComments: "none",
  target: ["es2020", "chrome100", "firefox100", "safari15"],
  outdir: out,
  metafile: true,
  logLevel: "info",
};

const scripts = await esbuild.build({
  ...common,
  entryPoints: { notebook: join(here, "src", "notebook.ts"), home: join(here, "src", "home.ts") },
  format: "iife",
});
// The widget manager: its own bundle (widgets.js, and widgets.css of the widgets'
// styles), which the notebook page loads when the first widget appears.
const widgets = await esbuild.build({
  ...common,
  entryPoints: { widgets: join(here, "src", "widgets", "entry.ts") },
  format: "iife",
  loader: { ".woff2": "dataurl", ".woff": "dataurl", ".ttf": "dataurl", ".svg": "dataurl", ".eot": "dataurl" },
});
const styles = await esbuild.build({
  ...common,
  entryPoints: { style: join(here, "src", "style.css") },
  loader: { ".woff2": "file" },
  assetNames: "fonts/[name]",
  plugins: [woff2Only],
});
copyFileSync(join(here, "src", "favicon.svg"), join(out, "favicon.svg"));

// -- licenses of what went into the bundles -------------------------------------------

const packages = new Map();
for (const meta of [scripts.metafile, widgets.metafile, styles.metafile]) {
  for (const input of Object.keys(meta.inputs)) {
    const m = /node_modules\/((?:@[^/]+\/)?[^/]+)\//.exec(input);
    if (m) packages.set(m[1], join(here, "node_modules", m[1]));
  }
}
const rows = [];
const texts = [];
for (const [name, dir] of [...packages].sort()) {
  const pkg = JSON.parse(readFileSync(join(dir, "package.json"), "utf8"));
  // An old package.json may list `licenses: [{type, url}]` instead.
  const listed = Array.isArray(pkg.licenses) ? pkg.licenses.map((l) => l.type).join(" OR ") : "";
  const license =
    typeof pkg.license === "string" ? pkg.license : pkg.license?.type ?? (listed || "see package");
  const file = readdirSync(dir).find((f) => /^(licen[cs]e|copying)(\.(md|txt))?$/i.test(f));
  const text = file ? readFileSync(join(dir, file), "utf8").trim() : `License: ${license}`;
  const repo = typeof pkg.repository === "string" ? pkg.repository : pkg.repository?.url ?? "";
  const home = (pkg.homepage ?? repo.replace(/^git\+/, "").replace(/\.git$/, "")).replace(/#readme$/, "");
  rows.push(`| ${name} | ${pkg.version} | ${license} | ${home} |`);
  texts.push(`${"=".repeat(78)}\n${name} ${pkg.version} (${license})\n${"=".repeat(78)}\n\n${text}\n`);
}
const katexFonts = existsSync(join(out, "fonts")) ? readdirSync(join(out, "fonts")).length : 0;
writeFileSync(
  join(here, "LICENSES.md"),
  `# Bundled libraries

\`npm run build\` writes this file. These libraries are bundled into
\`ipytwist/web/static/\` (\`notebook.js\`, \`home.js\`, \`style.css\`, the widget code
\`widgets.js\` and \`widgets.css\` (loaded when a widget appears), and the
${katexFonts} KaTeX fonts in \`fonts/\`, which are KaTeX's, under its MIT license).
Their full license texts ship with the package in
\`ipytwist/web/static/THIRD-PARTY-LICENSES.txt\`.

| library | version | license | home |
|---|---|---|---|
${rows.join("\n")}

Build tools, not bundled: esbuild (MIT), TypeScript (Apache-2.0).
`,
);
writeFileSync(
  join(out, "THIRD-PARTY-LICENSES.txt"),
  `Libraries bundled into ipytwist's web pages (notebook.js, home.js, style.css, fonts/,\nwidgets.js, widgets.css).\n\n${texts.join("\n")}`,
);
