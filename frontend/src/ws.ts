// The kernel WebSocket: one session id for the page's lifetime, replay from the last
// iopub message seen, and reconnection (the service replays what was missed).

import { baseUrl } from "./base";
import { type Message, decodeBinaryFrame, encodeBinaryFrame, makeMessage, uuid } from "./protocol";

export type SocketState = "connecting" | "open" | "reconnecting" | "closed";

export interface SocketHandlers {
  message(msg: Message): void;
  state(state: SocketState): void;
}

const MAX_QUEUED = 1000;
const BACKOFF_MS = [250, 500, 1000, 2000, 4000, 8000];

export class KernelSocket {
  readonly sessionId = uuid();
  /** The msg_id of the last iopub message received: where a reconnection resumes. */
  lastSeen: string;
  private ws: WebSocket | null = null;
  private queue: (string | ArrayBuffer)[] = [];
  private attempts = 0;
  private stopped = false;
  private timer: number | undefined;
  private openWaiters: ((open: boolean) => void)[] = [];

  constructor(
    private readonly kernelId: string,
    sinceMsgId: string,
    private readonly on: SocketHandlers,
  ) {
    this.lastSeen = sinceMsgId;
  }

  private url(): string {
    const proto = location.protocol === "https:" ? "wss:" : "ws:";
    const params = new URLSearchParams({ session_id: this.sessionId });
    if (this.lastSeen) params.set("since_msg_id", this.lastSeen);
    return `${proto}//${location.host}${baseUrl()}api/kernels/${this.kernelId}/channels?${params}`;
  }

  connect(): void {
    if (this.stopped) return;
    this.on.state(this.attempts === 0 ? "connecting" : "reconnecting");
    const ws = new WebSocket(this.url());
    ws.binaryType = "arraybuffer";
    this.ws = ws;
    ws.onopen = () => {
      this.attempts = 0;
      for (const resolve of this.openWaiters.splice(0)) resolve(true);
      this.on.state("open");
      for (const frame of this.queue.splice(0)) ws.send(frame);
    };
    ws.onmessage = (event: MessageEvent) => {
      let msg: Message;
      try {
        msg =
          typeof event.data === "string"
            ? (JSON.parse(event.data) as Message)
            : decodeBinaryFrame(event.data as ArrayBuffer);
      } catch {
        return;
      }
      if (msg.channel === "iopub" && msg.header?.msg_id) this.lastSeen = msg.header.msg_id;
      this.on.message(msg);
    };
    ws.onclose = (event: CloseEvent) => {
      if (this.ws !== ws) return;
      this.ws = null;
      // 4000: this session was taken over by a newer connection (another copy of the page).
      if (this.stopped || event.code === 4000) {
        this.stop();
        return;
      }
      this.on.state("reconnecting");
      const delay = BACKOFF_MS[Math.min(this.attempts, BACKOFF_MS.length - 1)];
      this.attempts += 1;
      this.timer = window.setTimeout(() => this.connect(), delay);
    };
  }

  /** Resolves true once the socket is open, false if it is not within `ms`. */
  opened(ms: number): Promise<boolean> {
    if (this.isOpen) return Promise.resolve(true);
    return new Promise((resolve) => {
      this.openWaiters.push(resolve);
      window.setTimeout(() => resolve(false), ms);
    });
  }

  /** Not open yet: connect anew, to replay from `msgId` (a transcript's last message). */
  restartFrom(msgId: string): void {
    this.lastSeen = msgId;
    if (this.stopped || this.isOpen) return;
    const ws = this.ws;
    this.ws = null;
    if (ws) {
      ws.onclose = null;
      ws.onopen = null;
      ws.onmessage = null;
      ws.close();
    }
    window.clearTimeout(this.timer);
    this.connect();
  }

  /** Reconnect now (after a restart, or when the browser comes back online). */
  retryNow(): void {
    if (this.stopped || this.ws !== null) return;
    window.clearTimeout(this.timer);
    this.connect();
  }

  stop(): void {
    this.stopped = true;
    window.clearTimeout(this.timer);
    const ws = this.ws;
    this.ws = null;
    ws?.close(1000);
    this.on.state("closed");
  }

  get isOpen(): boolean {
    return this.ws?.readyState === WebSocket.OPEN;
  }

  /** Send a request; while disconnected it waits (bounded) for the next connection. */
  send(
    channel: string,
    msgType: string,
    content: unknown,
    parent?: Message["header"],
    extra?: { metadata?: Record<string, unknown>; buffers?: readonly (ArrayBuffer | ArrayBufferView)[] },
  ): string {
    const msg = makeMessage(channel, msgType, content, this.sessionId, parent);
    if (extra?.metadata) msg.metadata = extra.metadata;
    const buffers = extra?.buffers ?? [];
    const frame = buffers.length ? encodeBinaryFrame(msg, buffers) : JSON.stringify(msg);
    if (this.ws && this.ws.readyState === WebSocket.OPEN) this.ws.send(frame);
    else if (this.queue.length < MAX_QUEUED) this.queue.push(frame);
    return msg.header.msg_id;
  }
}
