/**
 * A one-row line editor for a terminal, shared by chat_client.ts and
 * chat_server.ts's operator console: the user types on the bottom row while
 * lines from elsewhere are printed above it.
 *
 * Why not node:readline: in Deno it measured and redrew the whole input for
 * every character, so a pasted line cost time in the square of its length
 * (a 5,000-character paste took 9 s to appear), and input taller than
 * the window left stale copies of the prompt in the scrollback.
 *
 * Here stdin is read raw, each chunk read (a paste arrives in one or a few)
 * becomes edits, and the row is drawn once per chunk. The input always takes
 * exactly one row: wider text scrolls sideways, with `<` and `>` where some
 * is hidden. A redraw writes at most one row whatever the input's length,
 * and printing above the prompt only ever has that one row to clear.
 *
 * Keys: text, Enter, Backspace, Delete, Left/Right, Home/End, Ctrl+A/E
 * (start/end), Ctrl+B/F (left/right), Ctrl+Left/Right or Alt+B/F (a word),
 * Ctrl+U/K (delete before/after the cursor), Ctrl+W (delete a word), Up/Down
 * (earlier lines), Ctrl+C, Ctrl+D (on an empty line: the end; else Delete).
 * A Tab is typed as a space; other control characters are ignored, so the
 * input never holds one.
 *
 * @module
 */

import { type Colour, paint } from "../utils.ts";

/** What the editor tells its owner. */
export interface EditorHooks {
  /** Enter was pressed on `text`; the input row is already empty again. */
  line(text: string): void;
  /** Ctrl+C: in raw mode it is a key, not a signal. */
  interrupt(): void;
  /** Ctrl+D on an empty line, or stdin ended. */
  end(): void;
}

/** An editor on the terminal's bottom row. */
export interface LineEditor {
  /** Prints `text` (safe to print, one line) above the input row; the input is redrawn as it was. */
  printAbove(text: string): void;
  /** Replaces the input with `text`, the cursor at its end (e.g. a line that was not sent). */
  setInput(text: string): void;
  /** Stops reading keys until resume(); the terminal keeps what is typed meanwhile. */
  pause(): void;
  /** Reads keys again after pause(). */
  resume(): void;
  /**
   * Replaces the prompt, e.g. with "Password: ". With `secret`, the input is
   * emptied (half-typed text must not become part of a password), each
   * character typed shows as "*", and the line entered stays out of Up/Down.
   */
  setPrompt(prompt: string, secret?: boolean): void;
  /** Rings the terminal's bell (BEL), e.g. for a line that names the user. */
  ring(): void;
  /** Erases the prompt row for good; printAbove() still prints. */
  hidePrompt(): void;
  /** hidePrompt(), stops reading keys and takes the terminal out of raw mode. */
  close(): void;
}

/** The terminal an editor uses: the real one by default, a fake in tests. */
export interface TerminalIo {
  /** Reads some input bytes into `buffer`: how many, or null at the end. */
  read(buffer: Uint8Array): Promise<number | null>;
  /** Writes `text` to the screen, all of it, before returning. */
  write(text: string): void;
  /** The terminal's width in columns. */
  columns(): number;
  /** Raw mode on (keys one by one, no echo, Ctrl+C a key) or off. */
  setRaw(raw: boolean): void;
  /** Calls `resized` when the window changes size; returns what stops that. */
  onResize(resized: () => void): () => void;
}

/** How an editor looks, and where it draws. */
export interface EditorOptions {
  /** The prompt before the input, e.g. "> ". */
  prompt: string;
  /** A colour for the prompt (none on a pipe or with NO_COLOR). */
  promptColour?: Colour;
  /** The terminal; the process's own stdin and stdout by default. */
  io?: TerminalIo;
}

/** Lines Up and Down can bring back. */
const HISTORY_LINES = 100;

/**
 * Starts editing on the terminal's bottom row: raw mode on, the prompt
 * drawn, keys read until close() (or the end of stdin, reported as end()).
 */
export function openLineEditor(hooks: EditorHooks, options: EditorOptions): LineEditor {
  const io = options.io ?? realTerminal();
  const painted = (text: string) => options.promptColour ? paint(options.promptColour, text) : text;
  let prompt = painted(options.prompt);
  let promptWidth = displayWidth(options.prompt);
  let secret = false;
  const input = new LineBuffer();
  const history = createHistory();
  let start = 0; // the first cell shown, once the input is wider than the row
  let drawnColumn = 0; // where the last draw left the cursor
  let prompting = true;
  let closed = false;
  let paused: PromiseWithResolvers<void> | undefined;

  /** The input row as it should look now, the cursor placed; "" once the prompt is hidden. */
  const row = () => {
    if (!prompting) return "";
    const cells = secret ? input.cells.map(() => "*") : input.cells;
    const view = fitInput(cells, input.cursor, start, io.columns() - promptWidth - 1);
    start = view.start;
    const before = view.hiddenBefore ? paint("dim", "<") : "";
    const after = view.hiddenAfter ? paint("dim", ">") : "";
    const column = promptWidth + view.cursorColumn;
    drawnColumn = column;
    const toCursor = column > 0 ? `\x1b[${column}C` : "";
    return `\r${prompt}${before}${view.text}${after}\x1b[K\r${toCursor}`;
  };
  const draw = () => {
    if (prompting) io.write(row());
  };
  /**
   * A narrower window: most terminals (tmux, VTE, iTerm2, kitty) rewrap the
   * old row onto several, the cursor on the one its column fell into. Back
   * up to the first of them and clear them all, or a stale copy stays.
   */
  const redrawResized = () => {
    if (!prompting) return;
    const up = Math.floor(drawnColumn / Math.max(io.columns(), 1));
    io.write(`${up > 0 ? `\x1b[${up}A` : ""}\r\x1b[J${row()}`);
  };

  const submit = () => {
    const text = input.text;
    if (!secret) history.add(text);
    input.set("");
    start = 0;
    hooks.line(text);
  };

  const press = (key: KeyName) => {
    if (key === "enter") return submit();
    if (key === "interrupt") return hooks.interrupt();
    if (key === "eof" && input.cells.length === 0) return hooks.end();
    if (key === "up" || key === "down") {
      if (!secret) input.set(history.recall(key, input.text));
      return;
    }
    input.edit(key);
  };

  const readKeys = async () => {
    const bytes = new Uint8Array(16 * 1024);
    const decoder = new TextDecoder();
    const toKeys = createKeyReader();
    try {
      while (!closed) {
        if (paused) await paused.promise;
        const n = await io.read(bytes);
        if (closed) return;
        if (n === null) break;
        for (const key of toKeys(decoder.decode(bytes.subarray(0, n), { stream: true }))) {
          if (closed) return;
          if ("text" in key) input.insert(key.text);
          else press(key.key);
        }
        draw(); // once per chunk: a paste is drawn once, not once per character
      }
    } catch {
      // stdin or the screen is gone (the terminal hung up): that is the end too.
    }
    if (!closed) hooks.end();
  };

  const editor: LineEditor = {
    printAbove(text) {
      io.write(`\r\x1b[K${text}\r\n${row()}`); // one write: a busy log never shows a torn row
    },
    setInput(text) {
      input.set(text);
      start = 0;
      draw();
    },
    pause() {
      paused ??= Promise.withResolvers<void>();
    },
    resume() {
      paused?.resolve();
      paused = undefined;
    },
    setPrompt(text, hidden = false) {
      prompt = painted(text);
      promptWidth = displayWidth(text);
      if (hidden) input.set("");
      secret = hidden;
      start = 0;
      draw();
    },
    ring() {
      io.write("\x07");
    },
    hidePrompt() {
      if (!prompting) return;
      prompting = false;
      io.write("\r\x1b[K");
    },
    close() {
      if (closed) return;
      editor.hidePrompt();
      closed = true;
      stopResize();
      editor.resume();
      io.setRaw(false);
    },
  };

  io.setRaw(true);
  const stopResize = io.onResize(redrawResized);
  draw();
  readKeys();
  return editor;
}

/** The process's own terminal: raw stdin, synchronous writes to stdout. */
function realTerminal(): TerminalIo {
  const encoder = new TextEncoder();
  return {
    read: (buffer) => Deno.stdin.read(buffer),
    write(text) {
      // Synchronous, so the row is never half drawn when the next line comes.
      let bytes = encoder.encode(text);
      while (bytes.length > 0) bytes = bytes.subarray(Deno.stdout.writeSync(bytes));
    },
    columns() {
      try {
        return Deno.consoleSize().columns;
      } catch {
        return 80;
      }
    },
    setRaw: (raw) => Deno.stdin.setRaw(raw),
    onResize(resized) {
      if (Deno.build.os === "windows") return () => {};
      Deno.addSignalListener("SIGWINCH", resized);
      return () => Deno.removeSignalListener("SIGWINCH", resized);
    },
  };
}

// ------------------------------------------------------------------ keys ---

/** The keys the editor acts on. */
type KeyName =
  | "enter"
  | "backspace"
  | "delete"
  | "left"
  | "right"
  | "home"
  | "end"
  | "word-left"
  | "word-right"
  | "up"
  | "down"
  | "kill-before"
  | "kill-after"
  | "kill-word"
  | "interrupt"
  | "eof";

/** A key, or a run of text to insert (a paste is one run, not thousands of keys). */
type Key = { key: KeyName } | { text: string };

const CONTROL_KEYS: Record<string, KeyName> = {
  "\x01": "home", // Ctrl+A
  "\x02": "left", // Ctrl+B
  "\x03": "interrupt", // Ctrl+C
  "\x04": "eof", // Ctrl+D
  "\x05": "end", // Ctrl+E
  "\x06": "right", // Ctrl+F
  "\x08": "backspace", // Ctrl+H
  "\x0a": "enter",
  "\x0b": "kill-after", // Ctrl+K
  "\x0d": "enter",
  "\x0e": "down", // Ctrl+N
  "\x10": "up", // Ctrl+P
  "\x15": "kill-before", // Ctrl+U
  "\x17": "kill-word", // Ctrl+W
  "\x7f": "backspace",
};

/** ESC [ ... X and ESC O X, by their last character. */
const ARROW_KEYS: Record<string, KeyName> = {
  A: "up",
  B: "down",
  C: "right",
  D: "left",
  H: "home",
  F: "end",
};

/** ESC [ N ~, by N (terminals disagree on Home and End). */
const TILDE_KEYS: Record<string, KeyName> = {
  "1": "home",
  "7": "home",
  "4": "end",
  "8": "end",
  "3": "delete",
};

/** Alt+key arrives as ESC and the key. */
const ALT_KEYS: Record<string, KeyName> = { b: "word-left", f: "word-right", "\x7f": "kill-word" };

// CSI (ESC [ parameters intermediates final), SS3 (ESC O key), or ESC and one character.
// deno-lint-ignore no-control-regex
const ESCAPE = /\x1b(?:\[([\x30-\x3f]*)[\x20-\x2f]*([\x40-\x7e])|O([\s\S])|([^[O]))/y;
// The start of one, cut at the end of a read.
// deno-lint-ignore no-control-regex
const UNFINISHED_ESCAPE = /^\x1b(?:\[[\x30-\x3f]*[\x20-\x2f]*|O)?$/;

/**
 * Turns decoded input into keys. Text between keys is one run; an escape
 * sequence cut between two reads is completed by the next.
 */
function createKeyReader(): (chunk: string) => Key[] {
  let pending = "";
  return (chunk) => {
    const text = pending + chunk;
    pending = "";
    const keys: Key[] = [];
    let run = "";
    const push = (key: KeyName | undefined) => {
      if (run) keys.push({ text: run });
      run = "";
      if (key) keys.push({ key });
    };
    for (let i = 0; i < text.length; i++) {
      const char = text[i];
      if (char === "\x1b") {
        ESCAPE.lastIndex = i;
        const match = ESCAPE.exec(text);
        if (match) {
          push(escapeKey(match));
          i = ESCAPE.lastIndex - 1;
        } else if (UNFINISHED_ESCAPE.test(text.slice(i))) {
          // Alone in its read it is the Escape key (ignored), else the start
          // of a sequence cut by the read's end.
          if (i > 0 || text !== chunk) pending = text.slice(i);
          break;
        }
      } else if (char === "\t") {
        run += " ";
      } else if (char in CONTROL_KEYS) {
        push(CONTROL_KEYS[char]);
        if (char === "\r" && text[i + 1] === "\n") i++; // one Enter, not two
      } else if (char >= " " && !(char >= "\x80" && char <= "\x9f")) {
        run += char;
      }
    }
    push(undefined);
    return keys;
  };
}

/** The key an escape sequence stands for; undefined for one the editor ignores. */
function escapeKey(match: RegExpExecArray): KeyName | undefined {
  const [, parameters, final, ss3, alt] = match;
  if (alt !== undefined) return ALT_KEYS[alt];
  if (ss3 !== undefined) return ARROW_KEYS[ss3];
  if (final === "~") return TILDE_KEYS[parameters.split(";")[0]];
  const key = ARROW_KEYS[final];
  const modified = parameters.includes(";"); // e.g. ESC [1;5C, Ctrl+Right
  if (modified && key === "left") return "word-left";
  if (modified && key === "right") return "word-right";
  return key;
}

// ----------------------------------------------------------------- input ---

const segmenter = new Intl.Segmenter(undefined, { granularity: "grapheme" });

/** `text` as the characters a user sees (an emoji with its modifiers is one). */
function graphemes(text: string): string[] {
  if (/^[\x20-\x7e]*$/.test(text)) return text.split(""); // the common case, fast
  return Array.from(segmenter.segment(text), (part) => part.segment);
}

const isSpace = (cell: string | undefined) => cell !== undefined && /^\s$/.test(cell);

/** The text being edited, as visible characters, and the cursor between them. */
class LineBuffer {
  cells: string[] = [];
  cursor = 0;

  get text(): string {
    return this.cells.join("");
  }

  set(text: string): void {
    this.cells = graphemes(text);
    this.cursor = this.cells.length;
  }

  /** One splice per run, so a paste costs its length once. */
  insert(text: string): void {
    const added = graphemes(text);
    // concat, not push(...added): a long paste would overflow the argument stack.
    this.cells = this.cursor === this.cells.length
      ? this.cells.concat(added)
      : this.cells.slice(0, this.cursor).concat(added, this.cells.slice(this.cursor));
    this.cursor += added.length;
  }

  edit(key: KeyName): void {
    const { cells, cursor } = this;
    switch (key) {
      case "backspace":
        if (cursor > 0) this.cut(cursor - 1, cursor);
        break;
      case "delete":
      case "eof": // Ctrl+D on a non-empty line
        this.cut(cursor, cursor + 1);
        break;
      case "left":
        this.cursor = Math.max(0, cursor - 1);
        break;
      case "right":
        this.cursor = Math.min(cells.length, cursor + 1);
        break;
      case "home":
        this.cursor = 0;
        break;
      case "end":
        this.cursor = cells.length;
        break;
      case "word-left":
        this.cursor = this.wordStart();
        break;
      case "word-right":
        this.cursor = this.wordEnd();
        break;
      case "kill-before":
        this.cut(0, cursor);
        break;
      case "kill-after":
        this.cut(cursor, cells.length);
        break;
      case "kill-word":
        this.cut(this.wordStart(), cursor);
        break;
    }
  }

  /** Removes cells [from, to) and leaves the cursor at `from`. */
  private cut(from: number, to: number): void {
    this.cells.splice(from, to - from);
    this.cursor = from;
  }

  /** Where the word before the cursor starts (spaces before the cursor skipped first). */
  private wordStart(): number {
    let i = this.cursor;
    while (i > 0 && isSpace(this.cells[i - 1])) i--;
    while (i > 0 && !isSpace(this.cells[i - 1])) i--;
    return i;
  }

  /** Where the word after the cursor ends. */
  private wordEnd(): number {
    let i = this.cursor;
    while (i < this.cells.length && isSpace(this.cells[i])) i++;
    while (i < this.cells.length && !isSpace(this.cells[i])) i++;
    return i;
  }
}

/** Lines entered so far, for Up and Down; the line being typed is kept while browsing. */
function createHistory() {
  const lines: string[] = [];
  let at = 0; // lines.length: the line being typed
  let draft = "";
  return {
    add(line: string): void {
      if (line !== "" && line !== lines.at(-1)) lines.push(line);
      if (lines.length > HISTORY_LINES) lines.shift();
      at = lines.length;
      draft = "";
    },
    /** The line Up or Down brings, given the input now. */
    recall(key: "up" | "down", current: string): string {
      const to = at + (key === "up" ? -1 : 1);
      if (to < 0 || to > lines.length) return current;
      if (at === lines.length) draft = current;
      at = to;
      return to === lines.length ? draft : lines[to];
    },
  };
}

// ------------------------------------------------------------------ view ---

/** What the input row shows. */
export interface InputView {
  /** The first cell shown. */
  start: number;
  /** The cells shown. */
  text: string;
  /** Text before `start` is hidden: a `<` goes before `text`. */
  hiddenBefore: boolean;
  /** Text after `text` is hidden: a `>` goes after it. */
  hiddenAfter: boolean;
  /** The cursor's column, counted from the `<` (or the text's first column). */
  cursorColumn: number;
}

/**
 * Which part of the input fits a row of `room` columns with the cursor
 * visible, scrolling as little as possible from `start` (the last first
 * cell shown). It looks at about `room` cells around the cursor, never the
 * whole input: drawing costs the same for 10 characters or 100,000.
 */
export function fitInput(
  cells: readonly string[],
  cursor: number,
  start: number,
  room: number,
): InputView {
  room = Math.max(room, 6);
  if (cells.length < room && widthOf(cells, 0, cells.length) < room - 1) start = 0; // all fits
  if (start > cursor) start = columnsBack(cells, cursor, Math.floor(room / 2));
  // Left from the cursor, down to `start` at most, while the cursor keeps a
  // column free before the row's last (where a ">" may go).
  let first = cursor;
  let before = 0;
  while (first > start) {
    const width = displayWidth(cells[first - 1]);
    if ((first - 1 > 0 ? 1 : 0) + before + width > room - 2) break;
    before += width;
    first--;
  }
  const left = first > 0 ? 1 : 0;
  // Right from the cursor: what fits, less a column for ">" if some is left over.
  let end = cursor;
  let used = left + before;
  while (end < cells.length && used + displayWidth(cells[end]) <= room) {
    used += displayWidth(cells[end++]);
  }
  if (end < cells.length) {
    while (used > room - 1) used -= displayWidth(cells[--end]);
  }
  return {
    start: first,
    text: cells.slice(first, end).join(""),
    hiddenBefore: left === 1,
    hiddenAfter: end < cells.length,
    cursorColumn: left + before,
  };
}

/** Columns of cells [from, to). */
function widthOf(cells: readonly string[], from: number, to: number): number {
  let width = 0;
  for (let i = from; i < to; i++) width += displayWidth(cells[i]);
  return width;
}

/** The cell about `columns` columns left of `cursor`. */
function columnsBack(cells: readonly string[], cursor: number, columns: number): number {
  let i = cursor;
  for (let width = 0; i > 0 && width < columns; i--) width += displayWidth(cells[i - 1]);
  return i;
}

/**
 * Terminal columns `text` takes: East Asian wide characters and emoji take
 * two, combining marks and zero-width characters none.
 */
export function displayWidth(text: string): number {
  let width = 0;
  for (const char of text) {
    const code = char.codePointAt(0)!;
    if (/\p{M}|[\u200b-\u200f\u2060\ufe00-\ufe0f]/u.test(char)) continue;
    const wide = /\p{Emoji_Presentation}/u.test(char) ||
      (code >= 0x1100 && code <= 0x115f) || (code >= 0x2e80 && code <= 0xa4cf) ||
      (code >= 0xac00 && code <= 0xd7a3) || (code >= 0xf900 && code <= 0xfaff) ||
      (code >= 0xfe30 && code <= 0xfe4f) || (code >= 0xff00 && code <= 0xff60) ||
      (code >= 0xffe0 && code <= 0xffe6) || (code >= 0x20000 && code <= 0x3fffd);
    width += wide ? 2 : 1;
  }
  return width;
}
