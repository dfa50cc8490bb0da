// The mime types the page draws, the richest first, as Jupyter chooses (no DOM here: the
// widget bundle uses it too).

import type { MimeBundle } from "../reducer";

export const MIME_ORDER = [
  "text/html",
  "text/markdown",
  "text/latex",
  "image/svg+xml",
  "image/png",
  "image/jpeg",
  "image/gif",
  "image/webp",
  "application/json",
  "text/plain",
];

export function pickMime(data: MimeBundle): string | undefined {
  return MIME_ORDER.find((m) => m in data && data[m] !== null && data[m] !== undefined);
}
