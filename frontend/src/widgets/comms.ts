// Comms over the page's kernel WebSocket, in the shape the widget manager expects of a
// comm (its IClassicComm): comm_open, comm_msg and comm_close both ways, and the
// callbacks of what a comm sent (the shell reply, the iopub status and outputs that name
// it as their parent), which the widget models use to pace their updates.
//
// No DOM and no widget code here: the unit tests drive it with plain messages.

import type { Message } from "../protocol";

export type Buffers = readonly (ArrayBuffer | ArrayBufferView)[];
type Handler = (msg: Message) => void;

/** What a comm's sender wants to hear of the replies to its message. */
export interface Callbacks {
  shell?: Record<string, Handler>;
  iopub?: Record<string, Handler>;
  input?: Handler;
}

/** How the router reaches the kernel: the page's socket. */
export interface WidgetLink {
  send(
    channel: string,
    msgType: string,
    content: unknown,
    metadata?: Record<string, unknown>,
    buffers?: Buffers,
  ): string;
}

/** Replies are awaited for at most this many messages at once (the oldest is dropped). */
export const MAX_CALLBACKS = 1000;

/** Messages a comm keeps until its model listens (it is made a moment after comm_open). */
export const MAX_EARLY = 1000;

export class Comm {
  private onMsg: Handler | null = null;
  private onClose: Handler | null = null;
  private early: Message[] = [];
  private closedBy: Message | null = null;

  constructor(
    readonly comm_id: string,
    readonly target_name: string,
    private readonly router: CommRouter,
  ) {}

  open(data: unknown, callbacks?: Callbacks, metadata?: object, buffers?: Buffers): string {
    const content = { comm_id: this.comm_id, target_name: this.target_name, data };
    return this.router.send("comm_open", content, callbacks, metadata, buffers);
  }

  send(data: unknown, callbacks?: Callbacks, metadata?: object, buffers?: Buffers): string {
    return this.router.send("comm_msg", { comm_id: this.comm_id, data }, callbacks, metadata, buffers);
  }

  close(data?: unknown, callbacks?: Callbacks, metadata?: object, buffers?: Buffers): string {
    this.router.forget(this.comm_id);
    const content = { comm_id: this.comm_id, data: data ?? {} };
    return this.router.send("comm_close", content, callbacks, metadata, buffers);
  }

  on_msg(callback: Handler): void {
    this.onMsg = callback;
    for (const msg of this.early.splice(0)) callback(msg);
  }

  on_close(callback: Handler): void {
    this.onClose = callback;
    if (this.closedBy) callback(this.closedBy);
  }

  /** A comm_msg from the kernel: kept (at most MAX_EARLY, the newest) until heard. */
  deliver(msg: Message): void {
    if (this.onMsg) this.onMsg(msg);
    else if (this.early.push(msg) > MAX_EARLY) this.early.shift();
  }

  /** The kernel closed this comm. */
  closed(msg: Message): void {
    this.closedBy = msg;
    this.onClose?.(msg);
  }
}

export class CommRouter {
  readonly comms = new Map<string, Comm>();
  private readonly callbacks = new Map<string, Callbacks>();

  /** `opened` hears every comm the kernel opens (after it is registered here). */
  constructor(
    private readonly link: WidgetLink,
    private readonly opened: (comm: Comm, msg: Message) => void,
  ) {}

  /** The comm `id` (made if this page has not seen it yet: a comm the kernel holds). */
  comm(id: string, target: string): Comm {
    let comm = this.comms.get(id);
    if (!comm) this.comms.set(id, (comm = new Comm(id, target, this)));
    return comm;
  }

  forget(id: string): void {
    this.comms.delete(id);
  }

  /** Send a comm message on shell; `callbacks` hear its replies. */
  send(type: string, content: unknown, callbacks?: Callbacks, metadata?: object, buffers?: Buffers): string {
    return this.request("shell", type, content, callbacks, metadata, buffers);
  }

  request(
    channel: string,
    type: string,
    content: unknown,
    callbacks?: Callbacks,
    metadata?: object,
    buffers?: Buffers,
  ): string {
    const id = this.link.send(channel, type, content, metadata as Record<string, unknown>, buffers);
    if (callbacks) {
      this.callbacks.set(id, callbacks);
      if (this.callbacks.size > MAX_CALLBACKS) {
        this.callbacks.delete(this.callbacks.keys().next().value as string);
      }
    }
    return id;
  }

  /** How many messages still wait for replies (for the tests and the bounds). */
  get waiting(): number {
    return this.callbacks.size;
  }

  /** A message from the kernel: a comm's, or a reply to one this page sent. */
  handle(msg: Message): void {
    const type = msg.header?.msg_type;
    const content = msg.content ?? {};
    if (msg.channel === "iopub" && typeof content.comm_id === "string") {
      const id: string = content.comm_id;
      if (type === "comm_open" && typeof content.target_name === "string") {
        this.opened(this.comm(id, content.target_name), msg);
      } else if (type === "comm_msg") {
        this.comms.get(id)?.deliver(msg);
      } else if (type === "comm_close") {
        const comm = this.comms.get(id);
        this.comms.delete(id);
        comm?.closed(msg);
      }
    }
    this.reply(msg);
  }

  private reply(msg: Message): void {
    const parent = msg.parent_header?.msg_id;
    const callbacks = parent ? this.callbacks.get(parent) : undefined;
    if (!callbacks) return;
    const type = msg.header?.msg_type;
    if (msg.channel === "shell") callbacks.shell?.reply?.(msg);
    else if (msg.channel === "stdin") callbacks.input?.(msg);
    else if (msg.channel === "iopub") {
      const iopub = callbacks.iopub ?? {};
      if (type === "status") iopub.status?.(msg);
      else if (type === "clear_output") iopub.clear_output?.(msg);
      else if (["stream", "display_data", "execute_result", "error"].includes(type)) {
        iopub.output?.(msg);
      }
      if (type === "status" && msg.content?.execution_state === "idle") {
        this.callbacks.delete(parent as string);
      }
    }
  }
}
