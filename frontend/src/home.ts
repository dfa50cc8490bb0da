// The running kernels (/): New, Open, Interrupt, Restart, Shut down.

import {
  ApiError,
  type KernelModel,
  interruptKernel,
  listKernels,
  loginUrl,
  newKernel,
  restartKernel,
  shutdownKernel,
} from "./api";
import { baseUrl } from "./base";

const POLL_MS = 5000;

const byId = (id: string): HTMLElement => document.getElementById(id) as HTMLElement;
const status = byId("home-status");
const tbody = byId("kernels").querySelector("tbody") as HTMLTableSectionElement;

function say(text: string): void {
  status.textContent = text;
}

function failed(e: unknown): void {
  if (e instanceof ApiError && e.status === 401) {
    location.href = loginUrl();
    return;
  }
  say(`Failed: ${e instanceof Error ? e.message : String(e)}`);
}

function ago(iso: string): string {
  const seconds = Math.max(0, (Date.now() - Date.parse(iso)) / 1000);
  if (!Number.isFinite(seconds)) return "";
  if (seconds < 60) return "just now";
  if (seconds < 3600) return `${Math.floor(seconds / 60)} min ago`;
  if (seconds < 86400) return `${Math.floor(seconds / 3600)} h ago`;
  return new Date(iso).toLocaleString();
}

function actionButton(
  label: string,
  short: string,
  action: () => Promise<unknown>,
  done: string,
): HTMLButtonElement {
  const b = document.createElement("button");
  b.type = "button";
  b.textContent = label;
  b.setAttribute("aria-label", `${label} kernel ${short}`);
  b.addEventListener("click", async () => {
    b.disabled = true;
    try {
      await action();
      say(done);
      await refresh();
    } catch (e) {
      failed(e);
    } finally {
      b.disabled = false;
    }
  });
  return b;
}

function row(k: KernelModel): HTMLTableRowElement {
  const short = k.id.slice(0, 8);
  const tr = document.createElement("tr");
  tr.dataset.kernelId = k.id;
  const name = document.createElement("td");
  const link = document.createElement("a");
  link.href = `${baseUrl()}kernels/${k.id}`;
  const code = document.createElement("code");
  code.textContent = short;
  link.append(code);
  name.append(link, ` ${k.name}`);
  const state = document.createElement("td");
  const badge = document.createElement("span");
  badge.className = "state";
  badge.dataset.state = k.execution_state;
  badge.innerHTML = '<span class="dot" aria-hidden="true"></span><span class="label"></span>';
  (badge.querySelector(".label") as HTMLElement).textContent = k.execution_state;
  state.append(badge);
  const windows = document.createElement("td");
  windows.textContent = String(k.connections);
  const activity = document.createElement("td");
  activity.textContent = ago(k.last_activity);
  activity.title = k.last_activity;
  const actionsCell = document.createElement("td");
  const actions = document.createElement("div");
  actions.className = "actions";
  actionsCell.append(actions);
  const open = document.createElement("a");
  open.className = "button primary";
  open.href = `${baseUrl()}kernels/${k.id}`;
  open.textContent = "Open";
  open.setAttribute("aria-label", `Open kernel ${short}`);
  actions.append(
    open,
    actionButton("Interrupt", short, () => interruptKernel(k.id), `Interrupted ${short}.`),
    actionButton("Restart", short, () => restartKernel(k.id), `Restarted ${short}.`),
    actionButton(
      "Shut down",
      short,
      async () => {
        if (!confirm(`Shut down kernel ${short}? Everyone using it loses its state.`)) return;
        await shutdownKernel(k.id);
      },
      `Shut down ${short}.`,
    ),
  );
  tr.append(name, state, windows, activity, actionsCell);
  return tr;
}

let timer = 0;

async function refresh(): Promise<void> {
  window.clearTimeout(timer);
  let starting = false;
  try {
    const kernels = await listKernels();
    starting = kernels.some((k) => k.execution_state === "starting");
    // Keep focus on a button of a row that is redrawn.
    const focused = document.activeElement;
    const focusRow = focused?.closest("tr")?.dataset.kernelId;
    const focusLabel = focused?.getAttribute("aria-label");
    tbody.replaceChildren(...kernels.map(row));
    byId("no-kernels").hidden = kernels.length > 0;
    byId("kernels").hidden = kernels.length === 0;
    if (focusRow && focusLabel) {
      const again = tbody.querySelector<HTMLElement>(
        `tr[data-kernel-id="${focusRow}"] [aria-label="${CSS.escape(focusLabel)}"]`,
      );
      again?.focus();
    }
  } catch (e) {
    failed(e);
  }
  // Soon again while a kernel starts, so its state shows when it is ready.
  timer = window.setTimeout(() => {
    if (document.hidden) timer = window.setTimeout(refresh, POLL_MS);
    else void refresh();
  }, starting ? 1000 : POLL_MS);
}

byId("new-kernel").addEventListener("click", async () => {
  say("Starting a kernel…");
  try {
    const k = await newKernel();
    location.href = `${baseUrl()}kernels/${k.id}`;
  } catch (e) {
    failed(e);
  }
});

void refresh();
document.addEventListener("visibilitychange", () => {
  if (!document.hidden) void refresh();
});
