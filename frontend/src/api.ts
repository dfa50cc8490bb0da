// The REST calls of the pages (the login cookie authenticates them; a same-origin fetch
// sends Origin, which the service requires of cookie-authenticated changes).

import { baseUrl } from "./base";

export class ApiError extends Error {
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(message);
  }
}

export interface KernelModel {
  id: string;
  name: string;
  last_activity: string;
  execution_state: string;
  connections: number;
}

export async function call<T = unknown>(method: string, path: string, body?: unknown): Promise<T> {
  const response = await fetch(path, {
    method,
    credentials: "same-origin",
    cache: "no-store",
    redirect: "manual",
    headers: body === undefined ? {} : { "content-type": "application/json" },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  if (response.type === "opaqueredirect" || response.status === 401) {
    throw new ApiError(401, "not logged in");
  }
  if (!response.ok) {
    let message = response.statusText;
    try {
      message = ((await response.json()) as { message?: string }).message ?? message;
    } catch {
      // not JSON
    }
    throw new ApiError(response.status, message);
  }
  if (response.status === 204) return undefined as T;
  return (await response.json()) as T;
}

export const kernelPath = (id: string): string =>
  `${baseUrl()}api/kernels/${encodeURIComponent(id)}`;

export const listKernels = (): Promise<KernelModel[]> => call("GET", `${baseUrl()}api/kernels`);
export const getKernel = (id: string): Promise<KernelModel> => call("GET", kernelPath(id));
export const newKernel = (): Promise<KernelModel> => call("POST", `${baseUrl()}api/kernels`, {});
export const interruptKernel = (id: string): Promise<void> => call("POST", `${kernelPath(id)}/interrupt`);
export const restartKernel = (id: string): Promise<KernelModel> => call("POST", `${kernelPath(id)}/restart`);
export const shutdownKernel = (id: string): Promise<void> => call("DELETE", kernelPath(id));
export const clearTranscript = (id: string): Promise<void> => call("DELETE", `${kernelPath(id)}/transcript`);

/** Where to log in again, coming back to this page. */
export const loginUrl = (): string =>
  `${baseUrl()}login?${new URLSearchParams({ next: location.pathname })}`;
