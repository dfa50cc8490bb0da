// Modules bundled without type declarations of their own.

/** ipympl's frontend: its widget models and views (it ships no .d.ts). */
declare module "jupyter-matplotlib";
/** Stylesheets imported for esbuild, which bundles them into widgets.css. */
declare module "*.css";
