// The pager: `obj?`, `obj??`, `%page` and Shift+Tab help, in a panel at the bottom.

import { ansiToHtml } from "./render/ansi";

export class Pager {
  constructor(
    private readonly panel: HTMLElement,
    private readonly body: HTMLElement,
    closeButton: HTMLElement,
    private readonly onClose: () => void,
  ) {
    closeButton.addEventListener("click", () => this.close());
    panel.addEventListener("keydown", (event) => {
      if (event.key === "Escape") {
        event.preventDefault();
        this.close();
      }
    });
  }

  get isOpen(): boolean {
    return !this.panel.hidden;
  }

  show(text: string): void {
    this.body.innerHTML = ansiToHtml(text);
    this.body.scrollTop = 0;
    this.panel.hidden = false;
    document.body.classList.add("pager-open");
  }

  close(): boolean {
    if (this.panel.hidden) return false;
    this.panel.hidden = true;
    document.body.classList.remove("pager-open");
    this.onClose();
    return true;
  }
}
