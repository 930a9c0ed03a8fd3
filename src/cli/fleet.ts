// The fleet's commands (issue 15): `push` (a validated directory as release N, or plain keys with --plain),
// `history`, `rollback`, `diff` and `rollout status|promote|abort|wait`. main.ts wires them with the flag helpers
// it shares with `run` and `check`.
import { InvalidArgumentError, Option, type Command } from 'commander';
import { chmod, mkdir, mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import type { Etcd3 } from 'etcd3';
import { describeEtcdError, etcdClient, EtcdError, normalizePrefix, type EtcdOptions } from '../source/etcd/client.js';
import { chooseCanary, sha256, type Head } from '../source/etcd/layout.js';
import { pushEntries, type PushResult } from '../source/etcd/push.js';
import { DEFAULT_KEEP, entryOf, history, publishRelease, readBlobs, readHead, readManifest, readRelease, rollback, type PublishResult, type ReleaseEntry } from '../source/etcd/releases.js';
import { finishRollout, listInstances, rolloutStatus, waitRollout } from '../source/etcd/rollout.js';
import { escapeControl, etcdOptionsOf, EXIT, loadSettings, redactSourceText, SettingsError, type DaemonSettings, type SettingsLayer } from '../daemon/index.js';
import { checkConfigs, type CheckReport } from '../index.js';

/** Exit codes of the fleet commands beyond the common ones (0 ok, 1 invalid config, 2 usage, 3 cannot run). */
export const FLEET_EXIT = {
  /** `push --wait`: the canary was aborted (an instance refused the release, or `rollout abort`). */
  ROLLOUT_ABORTED: 4,
  /** `push --wait`: the canary was neither promoted nor aborted before --timeout (or another release replaced it). */
  ROLLOUT_UNFINISHED: 5,
} as const;

export interface FleetFlags {
  config?: string | undefined;
  configDir?: string | undefined;
  schemaDir?: string | undefined;
  [flag: string]: unknown;
}

/** What main.ts lends: its shared flag sets and the settings layer of the flags. */
export interface FleetWiring {
  dirOptions(cmd: Command): Command;
  etcdOptions(cmd: Command): Command;
  findConfig(flags: FleetFlags, options?: { etcdIsASource?: boolean }): Promise<void>;
  flagLayer(flags: FleetFlags): SettingsLayer;
}

const wholeNumber = (value: string): number => {
  if (!/^\d+$/.test(value)) throw new InvalidArgumentError('expected a whole number >= 0');
  return Number(value);
};
const positive = (value: string): number => {
  const n = wholeNumber(value);
  if (n < 1) throw new InvalidArgumentError('expected a whole number >= 1');
  return n;
};
const seconds = (value: string): number => {
  if (!/^\d+(\.\d+)?$/.test(value)) throw new InvalidArgumentError('expected a number of seconds');
  return Number(value);
};

/** `--config`, for the commands that read only etcd: its etcd settings (default: ./hotconf.yaml when there is one). */
const settingsFileOption = () => new Option('-c, --config <file>', 'the daemon settings file, for its etcd: settings (default: ./hotconf.yaml if present)').env('HOTCONF_CONFIG');

const out = (s: string) => process.stdout.write(s);
const err = (s: string) => process.stderr.write(`hotconf: ${s}\n`);
const json = (v: unknown) => out(`${JSON.stringify(v, null, 2)}\n`);

/** user@host, recorded in each release and head move. */
export function author(): string {
  let user = process.env.USER ?? process.env.LOGNAME ?? 'unknown';
  try {
    user = os.userInfo().username;
  } catch {
    // no passwd entry (a container with an arbitrary uid): the environment's name
  }
  return `${user}@${os.hostname()}`;
}

/** Loads settings (flags < env < file); problems are printed and `undefined` returned (exit 3). */
async function settingsOf(w: FleetWiring, flags: FleetFlags, keepConfigDir: boolean): Promise<DaemonSettings | undefined> {
  try {
    return await loadSettings({ settingsFile: flags.config, flags: w.flagLayer(flags) }, { keepConfigDir });
  } catch (e) {
    if (!(e instanceof SettingsError)) throw e;
    for (const problem of e.errors) err(problem.message);
    return undefined;
  }
}

/** Runs `fn` with a client on the settings' etcd; etcd's errors are printed and become exit 3. */
async function withEtcd(settings: DaemonSettings, fn: (client: Etcd3, prefix: string, options: EtcdOptions) => Promise<number>): Promise<number> {
  if (!settings.etcd?.endpoints || !settings.etcd.prefix) {
    err('this command needs --etcd URL[,URL] and --etcd-prefix PREFIX (or HOTCONF_ETCD and HOTCONF_ETCD_PREFIX)');
    return EXIT.USAGE;
  }
  let options: EtcdOptions;
  let client: Etcd3;
  try {
    options = await etcdOptionsOf(settings.etcd);
    client = await etcdClient(options);
  } catch (e) {
    // a password file that cannot be read, a TLS file, a bad endpoint
    if (e instanceof SettingsError) for (const problem of e.errors) err(problem.message);
    else err(e instanceof Error ? e.message : String(e));
    return EXIT.CANNOT_RUN;
  }
  try {
    return await fn(client, normalizePrefix(settings.etcd.prefix), options);
  } catch (e) {
    err((e instanceof EtcdError ? e : describeEtcdError(e, options.endpoints)).message);
    return EXIT.CANNOT_RUN;
  } finally {
    client.close();
  }
}

/** The etcd-only commands: settings without a config directory. */
async function etcdCommand(w: FleetWiring, flags: FleetFlags, fn: (client: Etcd3, prefix: string, settings: DaemonSettings) => Promise<number>): Promise<number> {
  // ./hotconf.yaml holds the etcd settings when no flag names a file (its configDir, if any, is not used here).
  if (flags.config === undefined && (await stat('hotconf.yaml').then((st) => st.isFile(), () => false))) flags.config = 'hotconf.yaml';
  const settings = await settingsOf(w, flags, true);
  if (!settings) return EXIT.CANNOT_RUN;
  return withEtcd(settings, (client, prefix) => fn(client, prefix, settings));
}

interface PushFlags extends FleetFlags {
  plain?: boolean;
  prune?: boolean;
  dryRun?: boolean;
  json?: boolean;
  message?: string;
  keep?: number;
  canary?: string;
  bake?: number;
  auto?: boolean;
  wait?: boolean;
  timeout?: number;
  adopt?: boolean;
}

export function fleetCommands(program: Command, w: FleetWiring): void {
  w.etcdOptions(w.dirOptions(program.command('push').description('validate a config directory, then publish it to etcd as the next release (or, with --plain, as plain keys)')))
    .option('-m, --message <text>', 'why: recorded in the release (hotconf history)')
    .option('--dry-run', 'print what would change, write nothing')
    .option('--json', 'print a JSON report instead of lines')
    .option('--keep <n>', `releases kept in etcd; older ones and content no kept release uses are removed (default: ${DEFAULT_KEEP})`, positive)
    .option('--canary <k>', 'give the release to K instances (or P%), chosen by a stable hash of their ids; the others stay on the stable release')
    .option('--auto', 'with --canary: abort at once if a canary instance refuses the release; promote once every one has run it healthily for --bake')
    .option('--bake <seconds>', 'with --auto: how long every canary instance must run the release healthily (default: 60)', seconds)
    .option('--wait', `with --canary: wait until the canary is promoted (exit 0) or aborted (exit ${FLEET_EXIT.ROLLOUT_ABORTED}); unfinished at --timeout: exit ${FLEET_EXIT.ROLLOUT_UNFINISHED}`)
    .option('--timeout <seconds>', 'with --wait: give up waiting after this long (default: 600)', seconds)
    .option('--adopt', 'publish a release onto a prefix that holds plain config keys (which instances then ignore)')
    .option('--prune', 'plain keys: with --adopt, delete them after the release switch; with --plain, delete the keys the directory lacks')
    .option('--plain', 'write the configs as plain keys (<prefix>app.yaml) in one guarded transaction, without releases (at most 128 files under etcd defaults)')
    .addHelpText('after', `\nExit codes: 0 ok (with --wait: promoted), 1 invalid config, 2 usage, 3 cannot run (etcd unreachable or refusing, a canary in progress, plain keys without --adopt), ${FLEET_EXIT.ROLLOUT_ABORTED} canary aborted (--wait), ${FLEET_EXIT.ROLLOUT_UNFINISHED} --wait timed out.`)
    .action(async (flags: PushFlags) => {
      process.exitCode = await push(w, flags);
    });

  w.etcdOptions(program.command('history').description('list the releases kept in etcd, newest first'))
    .addOption(settingsFileOption())
    .option('--json', 'print JSON')
    .option('--limit <k>', 'show the newest K releases', positive)
    .action(async (flags: FleetFlags & { json?: boolean; limit?: number }) => {
      process.exitCode = await etcdCommand(w, flags, async (client, prefix) => {
        const h = await history(client, prefix, flags.limit);
        if (flags.json) {
          json(
            h.releases.map(({ release, createdAt, author: by, message, changed, removed, changedCount, removedCount, state, entries, rollbackOf, aborted }) => ({
              release,
              createdAt,
              author: by,
              message,
              changed,
              removed,
              ...(changedCount > changed.length ? { changedCount } : {}),
              ...(removedCount > removed.length ? { removedCount } : {}),
              state,
              entries,
              ...(rollbackOf === undefined ? {} : { rollbackOf }),
              ...(aborted ? { aborted } : {}),
            })),
          );
          return EXIT.OK;
        }
        if (!h.head) {
          out(`no releases under ${escapeControl(prefix)}\n`);
          return EXIT.OK;
        }
        const rows = [['RELEASE', 'CREATED', 'AUTHOR', 'STATE', 'CHANGED', 'REMOVED', 'MESSAGE']];
        for (const r of h.releases) {
          const note = r.aborted ? ` [aborted: ${r.aborted.why}]` : '';
          rows.push([String(r.release), r.createdAt.replace(/\.\d+Z$/, 'Z'), r.author, r.state || '-', String(r.changedCount), String(r.removedCount), r.message + note]);
        }
        out(table(rows.map((row) => row.map(escapeControl))));
        return EXIT.OK;
      });
    });

  w.etcdOptions(program.command('rollback').description("publish an earlier release's content as a new release (history stays linear)"))
    .addOption(settingsFileOption())
    .requiredOption('--to <n>', 'the release whose content the fleet goes back to', positive)
    .option('-m, --message <text>', 'why (default: "rollback to release N")')
    .option('--keep <n>', `releases kept in etcd (default: ${DEFAULT_KEEP})`, positive)
    .option('--json', 'print JSON')
    .action(async (flags: FleetFlags & { to: number; message?: string; keep?: number; json?: boolean }) => {
      process.exitCode = await etcdCommand(w, flags, async (client, prefix) => {
        const res = await rollback(client, prefix, flags.to, { author: author(), ...(flags.message === undefined ? {} : { message: flags.message }), ...(flags.keep === undefined ? {} : { keep: flags.keep }) });
        report(prefix, res, { json: flags.json === true, dryRun: false, what: `rollback to release ${flags.to}` });
        return EXIT.OK;
      });
    });

  w.etcdOptions(w.dirOptions(program.command('diff').description('a unified diff per config between two releases, or a release and a directory (secret values redacted by schema)')))
    .option('--from <n>', 'the release to compare from (default: the stable release)', positive)
    .option('--to <m>', 'the release to compare to (default: the config directory, as push finds it)', positive)
    .action(async (flags: FleetFlags & { from?: number; to?: number }) => {
      process.exitCode = await diff(w, flags);
    });

  const rollout = program.command('rollout').description('the canary in progress: status, promote, abort');
  w.etcdOptions(rollout.command('status').description('the stable release, the canary, and every live instance'))
    .addOption(settingsFileOption())
    .option('--json', 'print JSON: {stable, canary, instances: [{id, release, state, seenAt, …}]}')
    .action(async (flags: FleetFlags & { json?: boolean }) => {
      process.exitCode = await etcdCommand(w, flags, async (client, prefix) => {
        const s = await rolloutStatus(client, prefix);
        if (flags.json) {
          json(s);
          return EXIT.OK;
        }
        if (s.stable === null) out(`no releases under ${escapeControl(prefix)}\n`);
        else out(`stable: release ${s.stable}\n`);
        if (s.canary) out(`canary: ${canaryLine(s.canary)}\n`);
        else if (s.stable !== null) out(`canary: none (last: ${escapeControl(s.reason ?? '')} by ${escapeControl(s.by ?? '')})\n`);
        const now = Date.now();
        const rows = [['INSTANCE', 'RELEASE', 'TARGET', 'STATE', 'ERRORS', 'SEEN']];
        for (const i of s.instances) rows.push([i.id, String(i.release ?? '-'), String(i.target ?? '-'), i.state, String(i.errors), `${Math.max(0, Math.round((now - i.seenAt) / 1000))} s ago`]);
        out(s.instances.length === 0 ? 'no live instances\n' : table(rows.map((row) => row.map(escapeControl))));
        return EXIT.OK;
      });
    });
  w.etcdOptions(rollout.command('wait').description(`wait for the canary in progress to end (an automatic one is decided here too): exit 0 promoted, ${FLEET_EXIT.ROLLOUT_ABORTED} aborted, ${FLEET_EXIT.ROLLOUT_UNFINISHED} unfinished at --timeout`))
    .addOption(settingsFileOption())
    .option('--timeout <seconds>', 'give up waiting after this long (default: 600)', seconds)
    .option('--json', 'print JSON: {release, outcome, why}')
    .action(async (flags: FleetFlags & { timeout?: number; json?: boolean }) => {
      process.exitCode = await etcdCommand(w, flags, async (client, prefix) => {
        const { head } = await readHead(client, prefix);
        if (!head?.canary) {
          err(`no canary in progress under ${prefix}${head ? `: every instance runs release ${head.stable} (last: ${head.reason} by ${head.by})` : ''}`);
          return EXIT.CANNOT_RUN;
        }
        const release = head.canary.release;
        return awaitCanary(client, prefix, release, { by: author(), timeoutSeconds: flags.timeout ?? 600, json: flags.json === true }, (r) => json({ release, ...r }));
      });
    });
  for (const action of ['promote', 'abort'] as const) {
    w.etcdOptions(rollout.command(action).description(action === 'promote' ? 'send the canary release to every instance' : 'return the canary instances to the stable release'))
      .addOption(settingsFileOption())
      .option('-m, --message <text>', 'why: recorded in the head (and, for abort, in the release)')
      .action(async (flags: FleetFlags & { message?: string }) => {
        process.exitCode = await etcdCommand(w, flags, async (client, prefix) => {
          const canary = await finishRollout(client, prefix, action, { by: author(), ...(flags.message === undefined ? {} : { reason: `${action}: ${flags.message}` }) });
          out(action === 'promote' ? `release ${canary.release} promoted: every instance now runs it\n` : `release ${canary.release} aborted: ${canary.ids.length} canary instance(s) return to the stable release\n`);
          return EXIT.OK;
        });
      });
  }
}

function canaryLine(c: NonNullable<Head['canary']>): string {
  const auto = c.auto ? `, automatic (bake ${c.auto.bakeMs / 1000} s)` : '';
  return `release ${c.release} on ${c.ids.length} instance(s): ${c.ids.map(escapeControl).join(', ')}${auto}, since ${new Date(c.startedAt).toISOString()}`;
}

function table(rows: string[][]): string {
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => (r[i] ?? '').length)));
  return rows.map((r) => r.map((c, i) => (i === r.length - 1 ? c : c.padEnd(widths[i]!))).join('  ').trimEnd()).join('\n') + '\n';
}

function report(prefix: string, res: PublishResult, o: { json: boolean; dryRun: boolean; what?: string; rollout?: { outcome: string; why: string } }): void {
  const { plan } = res;
  const created = res.release !== undefined;
  const release = created ? res.release : o.dryRun ? plan.release : plan.parent;
  if (o.json) {
    json({
      release: release ?? null,
      created,
      prefix,
      dryRun: o.dryRun,
      parent: plan.parent ?? null,
      changed: plan.changed,
      removed: plan.removed,
      unchanged: plan.unchanged,
      uploaded: { blobs: plan.upload, bytes: plan.uploadBytes },
      revision: res.revision ?? null,
      canary: res.head?.canary && created ? { release: res.head.canary.release, ids: res.head.canary.ids, auto: res.head.canary.auto ?? null } : null,
      gc: res.gc ?? null,
      prunedPlainKeys: res.prunedPlain,
      ...(o.rollout ? { rollout: o.rollout } : {}),
    });
    return;
  }
  const added = new Set(plan.added);
  for (const key of plan.changed) out(`${added.has(key) ? '+' : '~'} ${escapeControl(key)}\n`);
  for (const key of plan.removed) out(`- ${escapeControl(key)}\n`);
  const counts = `${plan.changed.length} changed, ${plan.removed.length} removed, ${plan.unchanged} unchanged`;
  if (o.dryRun) {
    out(`dry run: release ${plan.release} would have ${counts}; ${plan.upload} blob(s) to upload (${plan.upload === 0 ? 0 : plan.uploadBytes} bytes); nothing written\n`);
    if (plan.plainKeys.length > 0) out(`note: ${prefix} holds ${plan.plainKeys.length} plain config key(s); the push needs --adopt\n`);
    return;
  }
  if (!created) {
    out(`release ${plan.parent}: nothing to push, it holds these ${plan.unchanged} config(s) already\n`);
    return;
  }
  out(`release ${res.release}: ${counts}${o.what ? ` (${o.what})` : ''}; revision ${res.revision}\n`);
  if (res.head?.canary) out(`canary: ${canaryLine(res.head.canary)}; the others stay on release ${res.head.stable}\n`);
  const gc = res.gc;
  if (gc && gc.releases + gc.manifests + gc.blobs > 0) out(`removed ${gc.releases} old release(s), ${gc.manifests} manifest part(s), ${gc.blobs} blob(s)\n`);
  if (res.prunedPlain > 0) out(`deleted ${res.prunedPlain} plain key(s)\n`);
  if (gc?.error !== undefined) err(`warning: release ${res.release} is out, but removing old content failed (the next push tries again): ${gc.error}`);
  if (res.pruneError !== undefined) err(`warning: release ${res.release} is out, but deleting the plain keys failed (instances ignore them): ${res.pruneError}`);
}

/** `hotconf push`: every file valid first (else exit 1, nothing written), then a release (or plain keys). */
async function push(w: FleetWiring, flags: PushFlags): Promise<number> {
  const usage = (msg: string) => {
    err(msg);
    return EXIT.USAGE;
  };
  if (flags.plain && (flags.canary !== undefined || flags.adopt || flags.message !== undefined || flags.keep !== undefined)) return usage('--plain writes plain keys: it takes none of --canary, --adopt, --message, --keep');
  if ((flags.auto || flags.bake !== undefined || flags.wait) && flags.canary === undefined) return usage('--auto, --bake and --wait go with --canary K');
  if (flags.bake !== undefined && !flags.auto) return usage('--bake goes with --auto');
  if (flags.timeout !== undefined && !flags.wait) return usage('--timeout goes with --wait');
  if (flags.prune && !flags.plain && !flags.adopt) return usage('--prune deletes plain keys: with --adopt (after the first release) or with --plain');
  await w.findConfig(flags, { etcdIsASource: false }); // push reads a directory and writes etcd
  const settings = await settingsOf(w, flags, true);
  if (!settings) return EXIT.CANNOT_RUN;
  if (!settings.etcd?.endpoints || !settings.etcd.prefix) return usage('push needs --etcd URL[,URL] and --etcd-prefix PREFIX (or HOTCONF_ETCD and HOTCONF_ETCD_PREFIX)');
  const configDir = path.resolve(settings.configDir!);
  const dirSettings = { ...settings, configDir };
  delete dirSettings.etcd;
  let checked: CheckReport;
  try {
    // keepSource: the text as validated is what is pushed (a file edited meanwhile is not re-read unchecked).
    checked = await checkConfigs({ ...dirSettings, keepSource: true });
  } catch (e) {
    err(e instanceof Error ? e.message : String(e));
    return EXIT.CANNOT_RUN;
  }
  if (!checked.ok) {
    for (const e of checked.errors) process.stderr.write(`${escapeControl(e.message)}\n`);
    err(`${checked.configs.filter((c) => !c.ok).length} of ${checked.configs.length} config(s) invalid; nothing was written to etcd`);
    return EXIT.INVALID;
  }
  // The bytes as validated (comments and all): every instance parses and validates them again.
  const files = new Map<string, Uint8Array>();
  for (const c of checked.configs) files.set(keyOf(configDir, c.file!), Buffer.from(c.source!, 'utf8'));
  return withEtcd(settings, async (client, prefix) => {
    if (flags.plain) return plainPush(client, prefix, files, flags);
    let canary: { ids: string[]; auto?: { bakeMs: number } } | undefined;
    if (flags.canary !== undefined) {
      const live = (await listInstances(client, prefix)).map((i) => i.id);
      let ids: string[];
      try {
        ids = chooseCanary(live, flags.canary);
      } catch (e) {
        return usage((e as Error).message);
      }
      if (ids.length === 0 && live.length > 0) return usage(`--canary ${flags.canary} chooses no instance (of ${live.length} live): ask for 1 or more`);
      if (ids.length === 0) {
        err(`--canary ${flags.canary}: no live instance under ${prefix} to choose from (${live.length} registered); start \`hotconf run --etcd\` instances first, or push without --canary`);
        return EXIT.CANNOT_RUN;
      }
      if (ids.length >= live.length) process.stderr.write(`hotconf: note: --canary ${flags.canary} covers every live instance (${live.length})\n`);
      canary = { ids, ...(flags.auto ? { auto: { bakeMs: Math.round((flags.bake ?? 60) * 1000) } } : {}) };
    }
    const entries = new Map<string, ReleaseEntry>([...files].map(([key, bytes]) => [key, entryOf(bytes)]));
    const by = author();
    const res = await publishRelease(client, prefix, entries, {
      author: by,
      ...(flags.message === undefined ? {} : { message: flags.message }),
      ...(canary ? { canary } : {}),
      dryRun: flags.dryRun === true,
      ...(flags.keep === undefined ? {} : { keep: flags.keep }),
      adopt: flags.adopt === true,
      prunePlain: flags.prune === true,
      onConflict: (attempt) => err(`the release head under ${prefix} moved while pushing (attempt ${attempt}); planning again`),
    });
    const waiting = flags.wait === true && res.release !== undefined;
    // --json --wait: one JSON document, after the outcome.
    if (!(waiting && flags.json)) report(prefix, res, { json: flags.json === true, dryRun: flags.dryRun === true });
    if (!waiting) return EXIT.OK;
    const release = res.release;
    if (!flags.json) out(`waiting for the canary of release ${release} to be ${flags.auto ? 'promoted or aborted automatically' : 'promoted or aborted (hotconf rollout promote|abort)'}…\n`);
    return awaitCanary(client, prefix, release, { by, timeoutSeconds: flags.timeout ?? 600, json: flags.json === true }, (rollout) => report(prefix, res, { json: true, dryRun: false, rollout }));
  });
}

/** Waits for the canary of `release` to end (deciding it when automatic); prints the outcome; returns the exit code:
 *  0 promoted, 4 aborted, 5 unfinished. With `json`, `printJson` prints the one JSON document. */
async function awaitCanary(
  client: Etcd3,
  prefix: string,
  release: number,
  o: { by: string; timeoutSeconds: number; json: boolean },
  printJson: (rollout: { outcome: string; why: string }) => void,
): Promise<number> {
  const ac = new AbortController();
  for (const signal of ['SIGINT', 'SIGTERM'] as const) process.once(signal, () => ac.abort());
  const end = await waitRollout(client, prefix, release, {
    by: o.by,
    timeoutMs: o.timeoutSeconds * 1000,
    signal: ac.signal,
    onWait: (why) => process.stderr.write(`hotconf: waiting: ${escapeControl(why)}\n`),
  });
  const line = `release ${release} ${end.outcome === 'timeout' ? 'still in canary' : end.outcome}: ${escapeControl(end.why)}`;
  if (o.json) printJson({ outcome: end.outcome, why: end.why });
  if (end.outcome === 'promoted') {
    if (!o.json) out(`${line}\n`);
    return EXIT.OK;
  }
  err(line);
  return end.outcome === 'aborted' ? FLEET_EXIT.ROLLOUT_ABORTED : FLEET_EXIT.ROLLOUT_UNFINISHED;
}

/** `push --plain`: today's plain keys, in one guarded transaction. */
async function plainPush(client: Etcd3, prefix: string, files: ReadonlyMap<string, Uint8Array>, flags: PushFlags): Promise<number> {
  const head = await readHead(client, prefix);
  if (head.head) {
    err(`${prefix} is in release mode (release ${head.head.stable} is stable): instances ignore plain keys there; push without --plain`);
    return EXIT.CANNOT_RUN;
  }
  const desired = new Map([...files].map(([key, bytes]) => [prefix + key, bytes]));
  const result: PushResult = await pushEntries(client, prefix, desired, {
    prune: flags.prune === true,
    dryRun: flags.dryRun === true,
    onConflict: (attempt) => err(`the keys under ${prefix} changed while pushing (attempt ${attempt}); reading them again`),
  });
  const { plan } = result;
  if (flags.json) {
    json({ prefix, dryRun: flags.dryRun === true, revision: result.revision ?? null, readAt: plan.revision, put: [...plan.put.keys()], removed: plan.remove, unchanged: plan.unchanged });
    return EXIT.OK;
  }
  for (const key of plan.put.keys()) out(`${plan.guard.has(key) ? '~' : '+'} ${escapeControl(key)}\n`);
  for (const key of plan.remove) out(`- ${escapeControl(key)}\n`);
  const changes = plan.put.size + plan.remove.length;
  if (flags.dryRun) out(`dry run: ${changes} change(s), ${plan.unchanged.length} unchanged, at revision ${plan.revision}; nothing written\n`);
  else if (result.revision === undefined) out(`nothing to push: ${prefix} already holds these ${plan.unchanged.length} config(s) (revision ${plan.revision})\n`);
  else out(`pushed ${changes} change(s) in one transaction: revision ${result.revision}\n`);
  return EXIT.OK;
}

/** One side of a diff: config key → text to show (redacted), or a notice that it cannot be shown. */
type Side = Map<string, ({ text: string } | { hidden: string }) & { sha: string }>;

/** Settings to check a directory with: no etcd, no validate.command (the diff judges each config's text). */
function dirCheck(settings: DaemonSettings, configDir: string): DaemonSettings {
  const s = { ...settings, configDir };
  delete s.etcd;
  delete s.validate;
  return s;
}

const keyOf = (configDir: string, file: string) => path.relative(configDir, path.resolve(file)).split(path.sep).join('/');

/** `files` as shown: redacted by the secrets `report` found in each (a config it did not pass is not shown). */
function sideOf(report: CheckReport, configDir: string, files: ReadonlyMap<string, Uint8Array>): Side {
  const byKey = new Map(report.configs.filter((c) => c.file !== undefined).map((c) => [keyOf(configDir, c.file!), c]));
  const side: Side = new Map();
  for (const [key, bytes] of files) {
    const c = byKey.get(key);
    const text = c?.ok ? redactSourceText(bytes, key, c.secrets) : undefined;
    const sha = sha256(bytes);
    side.set(key, text !== undefined ? { text, sha } : { sha, hidden: c?.ok ? 'its secrets could not be located in the text' : 'invalid against the schemas, so its secrets cannot be located' });
  }
  return side;
}

/** Release content as shown: validated against the schemas in a private temporary directory (removed after). */
async function redactedSide(settings: DaemonSettings, files: ReadonlyMap<string, Uint8Array>): Promise<Side> {
  const tmp = await mkdtemp(path.join(os.tmpdir(), 'hotconf-diff-'));
  try {
    await chmod(tmp, 0o700);
    for (const [key, bytes] of files) {
      const file = path.join(tmp, ...key.split('/'));
      await mkdir(path.dirname(file), { recursive: true, mode: 0o700 });
      await writeFile(file, bytes, { mode: 0o600 });
    }
    return sideOf(await checkConfigs(dirCheck(settings, tmp)), tmp, files);
  } finally {
    await rm(tmp, { recursive: true, force: true });
  }
}

async function diff(w: FleetWiring, flags: FleetFlags & { from?: number; to?: number }): Promise<number> {
  const toDir = flags.to === undefined;
  if (toDir) await w.findConfig(flags, { etcdIsASource: false });
  const settings = await settingsOf(w, flags, toDir);
  if (!settings) return EXIT.CANNOT_RUN;
  return withEtcd(settings, async (client, prefix) => {
    const { head } = await readHead(client, prefix);
    if (!head) {
      err(`${prefix} holds no release yet (hotconf push publishes the first)`);
      return EXIT.CANNOT_RUN;
    }
    const manifestOf = async (n: number) => {
      const meta = await readRelease(client, prefix, n);
      if (!meta) throw new EtcdError('E_FLEET', `release ${n} is not in etcd under ${prefix} (see \`hotconf history\`)`);
      return readManifest(client, prefix, meta);
    };
    const from = flags.from ?? head.stable;
    const fromManifest = await manifestOf(from);
    // Only the configs whose bytes differ are read, checked and shown.
    const only = <T>(m: ReadonlyMap<string, T>, keys: ReadonlySet<string>) => new Map([...m].filter(([key]) => keys.has(key)));
    const differing = (to: ReadonlyMap<string, string>) =>
      new Set([...new Set([...fromManifest.keys(), ...to.keys()])].filter((key) => fromManifest.get(key)?.sha !== to.get(key)));
    let toSide: Side;
    let toName: string;
    let keys: Set<string>;
    if (flags.to !== undefined) {
      const toManifest = await manifestOf(flags.to);
      keys = differing(new Map([...toManifest].map(([key, e]) => [key, e.sha])));
      toSide = await redactedSide(settings, await readBlobs(client, prefix, only(toManifest, keys)));
      toName = `release ${flags.to}`;
    } else {
      const configDir = path.resolve(settings.configDir!);
      const report = await checkConfigs(dirCheck(settings, configDir));
      const files = new Map<string, Uint8Array>();
      for (const c of report.configs) if (c.file !== undefined) files.set(keyOf(configDir, c.file), await readFile(path.resolve(c.file)));
      keys = differing(new Map([...files].map(([key, bytes]) => [key, sha256(bytes)])));
      toSide = sideOf(report, configDir, only(files, keys));
      toName = shownDir(configDir);
    }
    const fromSide = await redactedSide(settings, await readBlobs(client, prefix, only(fromManifest, keys)));
    const { createTwoFilesPatch } = await import('diff');
    let changed = 0;
    for (const key of [...keys].sort()) {
      const a = fromSide.get(key);
      const b = toSide.get(key);
      const textOf = (s: typeof a) => (s === undefined ? '' : 'text' in s ? s.text : `# [not shown: ${s.hidden}]\n`);
      changed++;
      if (a && b && 'text' in a && 'text' in b && a.text === b.text) {
        out(`# ${escapeControl(key)}: only secret values differ (not shown)\n`);
        continue;
      }
      if (a && b && 'hidden' in a && 'hidden' in b) {
        out(`# ${escapeControl(key)}: not shown (${a.hidden})\n`);
        continue;
      }
      const patch = createTwoFilesPatch(
        a ? `release ${from}/${key}` : '/dev/null',
        b ? (flags.to !== undefined ? `release ${flags.to}/${key}` : `${toName}/${key}`) : '/dev/null',
        textOf(a),
        textOf(b),
        undefined,
        undefined,
        { context: 3 },
      );
      // jsdiff's first line is "===…"; keep the ---/+++ header and the hunks.
      out(patch.split('\n').slice(1).map(escapeControl).join('\n'));
    }
    out(changed === 0 ? `no differences between release ${from} and ${toName}\n` : `${changed} config(s) differ between release ${from} and ${toName}\n`);
    return EXIT.OK;
  });
}

/** `./config` inside the current directory, else the absolute path. */
function shownDir(dir: string): string {
  const rel = path.relative(process.cwd(), dir);
  return rel === '' ? '.' : rel.startsWith('..') || path.isAbsolute(rel) ? dir : `./${rel}`;
}
