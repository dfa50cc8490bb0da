// Jupyter messages as the kernel WebSocket carries them (legacy JSON frames).

export interface Header {
  msg_id: string;
  msg_type: string;
  session: string;
  username: string;
  date: string;
  version: string;
}

export interface Message {
  channel: string;
  header: Header;
  parent_header: Partial<Header>;
  metadata: Record<string, unknown>;
  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  content: any;
  buffers: unknown[];
}

/** A random UUID; also outside secure contexts, where crypto.randomUUID is missing. */
export function uuid(): string {
  const b = new Uint8Array(16);
  crypto.getRandomValues(b);
  b[6] = (b[6] & 0x0f) | 0x40;
  b[8] = (b[8] & 0x3f) | 0x80;
  const h = Array.from(b, (x) => x.toString(16).padStart(2, "0")).join("");
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`;
}

export function makeMessage(
  channel: string,
  msgType: string,
  content: unknown,
  session: string,
  parent?: Partial<Header>,
): Message {
  return {
    channel,
    header: {
      msg_id: uuid(),
      msg_type: msgType,
      username: "browser",
      session,
      date: new Date().toISOString(),
      version: "5.3",
    },
    parent_header: parent ?? {},
    metadata: {},
    content,
    buffers: [],
  };
}

export const parentId = (msg: Message): string | undefined => msg.parent_header?.msg_id;

/** Jupyter counts cursor positions in code points; JavaScript strings in UTF-16 units. */
const SURROGATE = /[\uD800-\uDFFF]/;

export function toCodePoints(text: string, index: number): number {
  const head = text.slice(0, index);
  return SURROGATE.test(head) ? Array.from(head).length : index;
}

export function fromCodePoints(text: string, points: number): number {
  if (!SURROGATE.test(text)) return points;
  let units = 0;
  let n = 0;
  for (const ch of text) {
    if (n >= points) break;
    units += ch.length;
    n += 1;
  }
  return units;
}

/** The legacy binary frame: a JSON message followed by its buffers. */
export function decodeBinaryFrame(data: ArrayBuffer): Message {
  const view = new DataView(data);
  const n = view.getUint32(0);
  const offsets: number[] = [];
  for (let i = 0; i < n; i += 1) offsets.push(view.getUint32(4 * (i + 1)));
  offsets.push(data.byteLength);
  const msg = JSON.parse(new TextDecoder().decode(data.slice(offsets[0], offsets[1]))) as Message;
  msg.buffers = offsets.slice(1, -1).map((start, i) => data.slice(start, offsets[i + 2]));
  return msg;
}

/** A message with buffers as a legacy binary frame (the inverse of decodeBinaryFrame). */
export function encodeBinaryFrame(msg: Message, buffers: readonly (ArrayBuffer | ArrayBufferView)[]): ArrayBuffer {
  const json = new TextEncoder().encode(JSON.stringify({ ...msg, buffers: [] }));
  const parts: Uint8Array[] = [
    json,
    ...buffers.map((b) =>
      b instanceof ArrayBuffer ? new Uint8Array(b) : new Uint8Array(b.buffer, b.byteOffset, b.byteLength),
    ),
  ];
  const head = 4 * (parts.length + 1);
  const total = parts.reduce((n, p) => n + p.byteLength, head);
  const out = new Uint8Array(total);
  const view = new DataView(out.buffer);
  view.setUint32(0, parts.length);
  let at = head;
  parts.forEach((part, i) => {
    view.setUint32(4 * (i + 1), at);
    out.set(part, at);
    at += part.byteLength;
  });
  return out.buffer;
}
