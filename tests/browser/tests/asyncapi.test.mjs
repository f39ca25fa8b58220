// docs/asyncapi.json (generated from src/protocol, kept equal to it by `cargo test --lib asyncapi`)
// is a valid AsyncAPI 3 document by AsyncAPI's own parser: its structure, every $ref and every schema.
// It needs no browser or server; it runs with the other node tests.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { Parser } from '@asyncapi/parser';

const here = path.dirname(fileURLToPath(import.meta.url));
const file = path.join(here, '..', '..', '..', 'docs', 'asyncapi.json');

test('docs/asyncapi.json is a valid AsyncAPI 3 document of the four sockets', async () => {
  const { document, diagnostics } = await new Parser().parse(fs.readFileSync(file, 'utf8'));
  const errors = diagnostics.filter((d) => d.severity === 0).map((d) => `${d.code}: ${d.message} at ${JSON.stringify(d.path)}`);
  assert.deepEqual(errors, [], 'AsyncAPI parser errors');
  assert.ok(document, 'parsed');
  const channels = document.channels().all().map((c) => c.address()).sort();
  assert.deepEqual(channels, ['/ws/agent?ticket={ticket}', '/ws/caller', '/ws/supervisor?ticket={ticket}', '/ws/telephony']);
  const offer = document.components().schemas().all().find((s) => s.id() === 'ServerEvent');
  assert.ok(offer, 'the server frames are described');
});
