// The note the service keeps in its transcript for an output larger than it holds
// (ipytwist/kernel/outputs.py, `omitted`): shown as what it is, not as program output.

export interface OmittedNote {
  mimeTypes: string[];
  /** Its size, or (not `whole`) the part the service counted before it stopped. */
  bytes: number;
  whole: boolean;
  maxOutputBytes: number;
}

const isCount = (v: unknown): v is number => typeof v === "number" && Number.isFinite(v) && v >= 0;

/** The note in an output's metadata (`ipytwist.omitted`), if it is one. */
export function omittedNote(metadata: Record<string, unknown>): OmittedNote | null {
  const ours = metadata.ipytwist as { omitted?: Record<string, unknown> } | undefined;
  const note = ours?.omitted;
  if (!note || typeof note !== "object") return null;
  const { mime_types: types, bytes, max_output_bytes: limit } = note;
  if (!Array.isArray(types) || !isCount(bytes) || !isCount(limit)) return null;
  const whole = note.whole !== false;
  return { mimeTypes: types.map(String), bytes, whole, maxOutputBytes: limit };
}

export function formatBytes(n: number): string {
  if (n < 1024) return `${n} bytes`;
  const [value, unit] = n < 1024 * 1024 ? [n / 1024, "KiB"] : [n / (1024 * 1024), "MiB"];
  return `${value.toFixed(value < 10 ? 1 : 0)} ${unit}`;
}

/** What the page says of an output the transcript left out: a title and a line. */
export function describeOmitted(note: OmittedNote): { title: string; detail: string } {
  const kinds = note.mimeTypes.length ? note.mimeTypes.join(", ") : "no data";
  return {
    title: `Output not kept: ${kinds}, ${note.whole ? "" : "more than "}${formatBytes(note.bytes)}`,
    detail:
      `The service keeps at most ${formatBytes(note.maxOutputBytes)} of one output in ` +
      "its transcript. The windows open when it ran got it whole; run the cell again " +
      "to see it.",
  };
}

export function omittedView(note: OmittedNote): HTMLElement {
  const { title, detail } = describeOmitted(note);
  const el = document.createElement("div");
  el.className = "output-omitted";
  el.setAttribute("role", "note");
  const head = document.createElement("strong");
  head.textContent = title;
  const line = document.createElement("span");
  line.textContent = detail;
  el.append(head, line);
  return el;
}
