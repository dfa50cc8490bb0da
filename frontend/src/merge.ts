// The page opens its WebSocket before it loads the transcript, and holds what arrives
// meanwhile; once the transcript is drawn, only what it does not contain is applied.

import type { Message } from "./protocol";

/** Of the messages held while the transcript loaded, those it does not contain: every
 * message addressed to this page (replies, input requests), and the iopub messages
 * after the transcript's last one (all of them if that one is not among them). */
export function afterTranscript(held: readonly Message[], lastMsgId: string): Message[] {
  const at = lastMsgId
    ? held.findIndex((m) => m.channel === "iopub" && m.header.msg_id === lastMsgId)
    : -1;
  return held.filter((msg, i) => i > at || msg.channel !== "iopub");
}
