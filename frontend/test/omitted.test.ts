// An output the service's transcript left out (ipytwist/kernel/outputs.py, `omitted`):
// the page recognises its note, from the transcript and live, and says what it was.

import assert from "node:assert/strict";
import { test } from "node:test";
import type { RichOutput } from "../src/reducer";
import { describeOmitted, formatBytes, omittedNote } from "../src/render/omitted";
import { loaded, message, transcript } from "./support";

/** The output the service keeps for a 30 MiB image (as its transcript's JSON has it). */
const kept = {
  output_type: "display_data",
  data: { "text/plain": "[ipytwist] This output is not kept in the transcript: ..." },
  metadata: {
    ipytwist: {
      omitted: {
        mime_types: ["image/png", "text/plain"],
        bytes: 41_943_054,
        whole: true,
        max_output_bytes: 4_194_304,
      },
    },
  },
  transient: { display_id: "plot" },
};

test("a note from the transcript says what the output was and where it still is", () => {
  const { nb } = loaded(transcript([{ id: "c", outputs: [kept] }]));
  const out = nb.cells.get("c")?.outputs[0] as RichOutput;
  const note = omittedNote(out.metadata);
  assert.deepEqual(note, {
    mimeTypes: ["image/png", "text/plain"],
    bytes: 41_943_054,
    whole: true,
    maxOutputBytes: 4_194_304,
  });
  assert.deepEqual(describeOmitted(note!), {
    title: "Output not kept: image/png, text/plain, 40 MiB",
    detail:
      "The service keeps at most 4.0 MiB of one output in its transcript. The windows " +
      "open when it ran got it whole; run the cell again to see it.",
  });
});

test("an update of its display replaces the note with what the update shows", () => {
  const { nb } = loaded(transcript([{ id: "c", outputs: [kept] }]));
  const update = { data: { "image/png": "iVBOR" }, metadata: {}, transient: { display_id: "plot" } };
  nb.apply(message("update_display_data", update));
  const out = nb.cells.get("c")?.outputs[0] as RichOutput;
  assert.equal(omittedNote(out.metadata), null);
  assert.equal(out.data["image/png"], "iVBOR");
});

test("other metadata, or a note that is not well formed, is no note", () => {
  assert.equal(omittedNote({}), null);
  assert.equal(omittedNote({ "image/png": { width: 3 } }), null);
  assert.equal(omittedNote({ ipytwist: { omitted: "yes" } }), null);
  assert.equal(omittedNote({ ipytwist: { omitted: { mime_types: [], bytes: -1 } } }), null);
  const empty = { ipytwist: { omitted: { mime_types: [], bytes: 5, max_output_bytes: 9 } } };
  assert.equal(describeOmitted(omittedNote(empty)!).title, "Output not kept: no data, 5 bytes");
  const part = { mime_types: ["application/json"], bytes: 4_194_320, whole: false };
  const counted = omittedNote({ ipytwist: { omitted: { ...part, max_output_bytes: 9 } } });
  assert.equal(
    describeOmitted(counted!).title,
    "Output not kept: application/json, more than 4.0 MiB",
  );
});

test("sizes read as people write them", () => {
  assert.deepEqual(
    [0, 1023, 1024, 10 * 1024 + 512, 1024 * 1024, 16 * 1024 * 1024].map(formatBytes),
    ["0 bytes", "1023 bytes", "1.0 KiB", "11 KiB", "1.0 MiB", "16 MiB"],
  );
});
