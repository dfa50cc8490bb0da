// The input cell: CodeMirror 6 with Python, IPython's keys (Shift+Enter runs, Up/Down
// at the edges walk the history) and TAB completion from the kernel.

import {
  type Completion,
  type CompletionResult,
  acceptCompletion,
  autocompletion,
  completionStatus,
  startCompletion,
} from "@codemirror/autocomplete";
import { defaultKeymap, history, historyKeymap } from "@codemirror/commands";
import { python } from "@codemirror/lang-python";
import { bracketMatching, indentOnInput, indentUnit, syntaxHighlighting } from "@codemirror/language";
import { EditorState, Prec } from "@codemirror/state";
import { EditorView, drawSelection, keymap } from "@codemirror/view";
import { classHighlighter } from "@lezer/highlight";

export interface CompleteReply {
  matches: string[];
  /** UTF-16 offsets into the code. */
  from: number;
  to: number;
  types: (string | undefined)[];
}

export interface EditorHooks {
  run(code: string): void;
  complete(code: string, pos: number): Promise<CompleteReply | null>;
  inspect(code: string, pos: number): void;
  /** Escape with no completion open: true if it closed something (the pager). */
  escape(): boolean;
  historyPrev(current: string): string | null;
  historyNext(): string | null;
}

function commonPrefix(words: string[]): string {
  let prefix = words[0] ?? "";
  for (const w of words) {
    while (!w.startsWith(prefix)) prefix = prefix.slice(0, -1);
  }
  return prefix;
}

export class InputEditor {
  readonly view: EditorView;
  private offered: CompletionResult | null = null;

  constructor(parent: HTMLElement, private readonly hooks: EditorHooks) {
    const source = (): CompletionResult | null => {
      const result = this.offered;
      this.offered = null;
      return result;
    };
    this.view = new EditorView({
      parent,
      state: EditorState.create({
        doc: "",
        extensions: [
          history(),
          drawSelection(),
          python(),
          indentUnit.of("    "),
          EditorState.tabSize.of(4),
          indentOnInput(),
          bracketMatching(),
          syntaxHighlighting(classHighlighter),
          autocompletion({
            override: [source],
            activateOnTyping: false,
            icons: false,
            closeOnBlur: true,
            maxRenderedOptions: 200,
          }),
          Prec.highest(
            keymap.of([
              { key: "Shift-Enter", run: () => this.run() },
              { key: "Mod-Enter", run: () => this.run() },
              { key: "Tab", run: (v) => acceptCompletion(v) || this.tab() },
              { key: "Shift-Tab", run: () => this.inspect() },
              { key: "ArrowUp", run: () => this.walk(-1) },
              { key: "ArrowDown", run: () => this.walk(1) },
              { key: "Escape", run: () => this.hooks.escape() },
            ]),
          ),
          keymap.of([...defaultKeymap, ...historyKeymap]),
          EditorView.lineWrapping,
          EditorView.contentAttributes.of({
            "aria-label": "Code input: Shift+Enter runs it",
            "aria-multiline": "true",
          }),
        ],
      }),
    });
  }

  get code(): string {
    return this.view.state.doc.toString();
  }

  setCode(code: string): void {
    this.view.dispatch({
      changes: { from: 0, to: this.view.state.doc.length, insert: code },
      selection: { anchor: code.length },
      scrollIntoView: true,
    });
  }

  focus(): void {
    this.view.focus();
  }

  private run(): boolean {
    const code = this.code;
    if (!code.trim()) return true;
    this.hooks.run(code); // first: the request leaves before the editor's own work
    this.setCode("");
    return true;
  }

  private inspect(): boolean {
    this.hooks.inspect(this.code, this.view.state.selection.main.head);
    return true;
  }

  /** Up on the first line / Down on the last line: the previous / next input. */
  private walk(dir: -1 | 1): boolean {
    const state = this.view.state;
    if (completionStatus(state) !== null) return false;
    const sel = state.selection.main;
    if (!sel.empty) return false;
    const line = state.doc.lineAt(sel.head).number;
    if (dir < 0 && line !== 1) return false;
    if (dir > 0 && line !== state.doc.lines) return false;
    const code = dir < 0 ? this.hooks.historyPrev(this.code) : this.hooks.historyNext();
    if (code === null) return false;
    this.setCode(code);
    return true;
  }

  /** Tab: indentation at a line's start, else the kernel's completions. */
  private tab(): boolean {
    const state = this.view.state;
    const sel = state.selection.main;
    const line = state.doc.lineAt(sel.head);
    const before = state.sliceDoc(line.from, sel.head);
    if (!sel.empty || !before.trim()) {
      const col = before.length;
      const spaces = " ".repeat(4 - (col % 4));
      this.view.dispatch(state.replaceSelection(spaces));
      return true;
    }
    void this.complete();
    return true;
  }

  private async complete(): Promise<void> {
    const doc = this.view.state.doc;
    const pos = this.view.state.selection.main.head;
    const reply = await this.hooks.complete(doc.toString(), pos);
    // The reader typed on meanwhile: these completions are for another text.
    if (!reply || this.view.state.doc !== doc || !reply.matches.length) return;
    const { from, to } = reply;
    const typed = doc.sliceString(from, to);
    if (reply.matches.length === 1) {
      this.insert(from, to, reply.matches[0]);
      return;
    }
    const prefix = commonPrefix(reply.matches);
    let end = to;
    if (prefix.length > typed.length && prefix.startsWith(typed)) {
      this.insert(from, to, prefix);
      end = from + prefix.length;
    }
    const options: Completion[] = reply.matches.map((label, i) => ({
      label,
      type: reply.types[i],
    }));
    this.offered = { from, to: end, options, validFor: /^[\w$]*$/ };
    startCompletion(this.view);
  }

  private insert(from: number, to: number, text: string): void {
    this.view.dispatch({
      changes: { from, to, insert: text },
      selection: { anchor: from + text.length },
      userEvent: "input.complete",
    });
  }
}
