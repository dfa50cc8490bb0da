// The base URL the pages read from their <body data-base-url>: every REST call,
// WebSocket and link is built from it, so anything but a "/…/" path falls back to "/".

import assert from "node:assert/strict";
import { afterEach, test } from "node:test";
import { kernelPath, loginUrl } from "../src/api";
import { baseUrl } from "../src/base";

const g = globalThis as Record<string, unknown>;

function page(baseUrlAttr: string | undefined): void {
  g.document = { body: { dataset: baseUrlAttr === undefined ? {} : { baseUrl: baseUrlAttr } } };
  g.location = { pathname: "/user/alice/kernels/k1" };
}

afterEach(() => {
  delete g.document;
  delete g.location;
});

test("the page's base URL prefixes the REST paths and the login", () => {
  page("/user/alice/");
  assert.equal(baseUrl(), "/user/alice/");
  assert.equal(kernelPath("k 1"), "/user/alice/api/kernels/k%201");
  assert.equal(loginUrl(), "/user/alice/login?next=%2Fuser%2Falice%2Fkernels%2Fk1");
});

test("without a document, or a base URL that is not a /…/ path, it is the root", () => {
  assert.equal(baseUrl(), "/");
  for (const bad of [undefined, "", "user/alice/", "/user/alice", "https://evil.example/", "//evil.example/"]) {
    page(bad);
    assert.equal(baseUrl(), "/", String(bad));
  }
});
