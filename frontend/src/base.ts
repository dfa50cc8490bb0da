// The service's base URL (its --base-url, e.g. "/user/alice/"): every REST call,
// WebSocket, asset and link of the pages lives below it. The page says it in its
// body's data-base-url; it always starts and ends with "/" (and is never "//host/").

/** The base URL the page was served under ("/" when the page does not say). */
export function baseUrl(): string {
  const given = typeof document === "undefined" ? undefined : document.body?.dataset.baseUrl;
  const path = given?.startsWith("/") && !given.startsWith("//") && given.endsWith("/");
  return path && given ? given : "/";
}
