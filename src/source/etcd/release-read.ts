// The instance's reads of the fleet layout (layout.ts): the prefix's state at one revision without the fleet's
// content (plain keys and the head only: the blobs of every release never cross the wire at a full read), and
// one release's content, fetched by sha (a blob the instance already holds is not fetched again). Releases,
// manifests and blobs are immutable once a meta names them, so a release read in several requests is one release.
import type { Etcd3, IKeyValue, IRangeResponse, IRequestOp } from 'etcd3';
import { mapLimit } from '../../async.js';
import { EtcdError, prefixEnd } from './client.js';
import { decodeJson, encodeManifest, fleetKeys, sha256, type ManifestEntry, type ManifestPart, type ReleaseMeta } from './layout.js';

/** Blobs per read transaction (etcd's default limit is 128 operations per transaction). */
const BLOBS_PER_TXN = 64;
/** Read transactions in flight while fetching a release. */
const FETCH_CONCURRENCY = 4;


const rangeOp = (key: Buffer, end?: Buffer): IRequestOp => ({ request_range: { key, ...(end ? { range_end: end } : {}) } });

/**
 * Everything under `prefix` an instance follows, at one revision: the plain keys (before and after the hidden
 * `.hotconf/` segment) and the head. The fleet's content (blobs, manifests, releases, instances) is left out.
 */
export async function readPrefixState(client: Etcd3, prefix: string): Promise<{ revision: string; clusterId: string; kvs: IKeyValue[] }> {
  const k = fleetKeys(prefix);
  const res = await client.kv.txn({
    compare: [],
    success: [rangeOp(Buffer.from(prefix), Buffer.from(k.root)), rangeOp(prefixEnd(k.root), prefixEnd(prefix)), rangeOp(Buffer.from(k.head))],
    failure: [],
  });
  const kvs = res.responses.flatMap((r) => (r.response_range as IRangeResponse | undefined)?.kvs ?? []);
  return { revision: res.header.revision, clusterId: res.header.cluster_id, kvs };
}

export interface ReleaseContent {
  readonly release: number;
  readonly meta: ReleaseMeta;
  /** Relative key (`db/primary.yaml`) → blob. */
  readonly entries: ReadonlyMap<string, ManifestEntry>;
  /** sha → bytes: exactly the blobs this release names. */
  readonly blobs: ReadonlyMap<string, Uint8Array>;
  /** Blobs fetched from etcd for this release (the others were held already). */
  readonly fetched: number;
}

/** The layout in etcd is not what a release needs (missing or damaged content): not a network problem. */
const broken = (msg: string) => new EtcdError('E_SOURCE_RELEASE', msg);

/**
 * Reads release `n`: its meta, its manifest parts and every blob it names that `held` lacks; checks the
 * manifest's and each blob's sha-256. Rejects with an EtcdError E_SOURCE_RELEASE when the content is missing or
 * damaged, and with etcd3's error when etcd cannot be read.
 */
export async function fetchRelease(client: Etcd3, prefix: string, n: number, held: ReadonlyMap<string, Uint8Array>): Promise<ReleaseContent> {
  const k = fleetKeys(prefix);
  const metaKey = k.release(n);
  const metaBytes = await client.get(metaKey).buffer();
  if (metaBytes === null) throw broken(`release ${n} named by ${k.head} does not exist under ${prefix} (removed by hotconf push --keep?)`);
  const meta = decodeJson<ReleaseMeta>(metaKey, metaBytes);
  const partsKey = k.manifestParts(meta.manifest);
  const parts = await client.kv.range({ key: Buffer.from(partsKey), range_end: prefixEnd(partsKey), sort_order: 'Ascend', sort_target: 'Key' });
  if (parts.kvs.length !== meta.manifestParts) {
    throw broken(`release ${n}: manifest ${meta.manifest} has ${parts.kvs.length} part(s) under ${partsKey}, its meta says ${meta.manifestParts}`);
  }
  const entries = new Map<string, ManifestEntry>();
  for (const kv of parts.kvs) {
    const part = decodeJson<ManifestPart>(kv.key.toString(), kv.value);
    for (const [key, e] of Object.entries(part.entries)) entries.set(key, e);
  }
  if (encodeManifest(entries).sha !== meta.manifest) throw broken(`release ${n}: manifest ${meta.manifest} does not match its content`);

  const need = [...new Set([...entries.values()].map((e) => e.sha))].filter((sha) => !held.has(sha));
  const got = new Map<string, Uint8Array>();
  const chunks: string[][] = [];
  for (let i = 0; i < need.length; i += BLOBS_PER_TXN) chunks.push(need.slice(i, i + BLOBS_PER_TXN));
  await mapLimit(chunks, FETCH_CONCURRENCY, async (chunk) => {
    const res = await client.kv.txn({ compare: [], success: chunk.map((sha) => rangeOp(Buffer.from(k.blob(sha)))), failure: [] });
    res.responses.forEach((r, i) => {
      const sha = chunk[i]!;
      const kv = (r.response_range as IRangeResponse | undefined)?.kvs[0];
      if (!kv) throw broken(`release ${n}: blob ${sha} is missing under ${k.blobs}`);
      if (sha256(kv.value) !== sha) throw broken(`release ${n}: blob ${sha} does not match its sha-256`);
      // A copy of its own: a slice would keep the whole response (the other 63 blobs) alive as long as it lives.
      got.set(sha, new Uint8Array(kv.value));
    });
  });
  const blobs = new Map<string, Uint8Array>();
  for (const e of entries.values()) {
    const bytes = held.get(e.sha) ?? got.get(e.sha)!;
    if (bytes.byteLength !== e.size) throw broken(`release ${n}: blob ${e.sha} is ${bytes.byteLength} bytes, its manifest says ${e.size}`);
    blobs.set(e.sha, bytes);
  }
  return { release: n, meta, entries, blobs, fetched: got.size };
}
