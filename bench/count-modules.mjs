// Counts the modules a Node process loads, by package, and prints the count to stderr at exit: an ESM resolve
// hook (every import) plus CommonJS's Module._load (every require). How bench/FINDINGS.md counted them:
//   node --import ./bench/count-modules.mjs dist/cli/main.js check --config hotconf.yaml
//   node --import ./bench/count-modules.mjs --input-type=module -e "await import('hotconf')"
import Module, { register } from 'node:module';
import { MessageChannel } from 'node:worker_threads';

const seen = new Set();
const { port1, port2 } = new MessageChannel();
const hook = `
let port;
export async function initialize(data) { port = data.port; }
export async function resolve(specifier, context, next) { const r = await next(specifier, context); port.postMessage(r.url); return r; }
`;
register(`data:text/javascript,${encodeURIComponent(hook)}`, { data: { port: port2 }, transferList: [port2] });
port1.on('message', (url) => seen.add(url));
port1.unref();

const load = Module._load;
Module._load = function (request, parent, isMain) {
  try {
    seen.add(Module._resolveFilename(request, parent, isMain));
  } catch {
    // not resolvable: Module._load throws it below
  }
  return load.apply(this, arguments);
};

process.on('exit', () => {
  const byPackage = {};
  for (const u of seen) {
    const key = u.startsWith('node:') || !u.includes('/') ? '<node builtin>' : (/node_modules\/((?:@[^/]+\/)?[^/]+)/.exec(u)?.[1] ?? '<own code>');
    byPackage[key] = (byPackage[key] ?? 0) + 1;
  }
  const rows = Object.entries(byPackage).sort((a, b) => b[1] - a[1]);
  process.stderr.write(`modules loaded: ${seen.size} (${rows.map(([k, n]) => `${k} ${n}`).join(', ')})\n`);
});
