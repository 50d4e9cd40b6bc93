// Open generated report pages in headless Chromium and report what a reader would hit.
//
// usage: node browser_check.mjs NODE_MODULES_DIR ROOT_DIR OUT_JSON PAGE.html [PAGE.html ...]
//
// Starting from the given pages (paths relative to ROOT_DIR), follows every relative link to
// another .html page under ROOT_DIR. Per page it records: failed requests (requestfailed,
// HTTP >= 400), console errors and page errors, relative links / images whose file does not
// exist, in-page anchors (#id) with no element, and signs of unescaped model text (the test
// payload sets window.__pwned or adds an element with a data-pwned attribute). On pages with
// filter <select data-filter> elements, it picks each option in turn and counts the table
// rows left visible. Writes one JSON report; exits non-zero only when it cannot run.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { createRequire } from 'node:module';
import { fileURLToPath, pathToFileURL } from 'node:url';

const [modulesArg, rootArg, outJson, ...starts] = process.argv.slice(2);
const modules = path.resolve(modulesArg);
const root = path.resolve(rootArg);
const chromium = (await import(pathToFileURL(path.join(modules, '@sparticuz/chromium/build/index.js')).href)).default;
const puppeteer = createRequire(path.join(modules, 'noop.js'))('puppeteer-core');

const userDataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'brittle-chromium-'));
const browser = await puppeteer.launch({
  executablePath: await chromium.executablePath(),
  headless: true,
  args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking',
    '--disable-component-update', '--disable-sync', '--no-first-run', `--user-data-dir=${userDataDir}`],
});

const report = { pages: {} };
const queue = starts.map((p) => path.resolve(root, p));
const seen = new Set();
try {
  while (queue.length) {
    const file = queue.shift();
    if (seen.has(file)) continue;
    seen.add(file);
    const rel = path.relative(root, file);
    const entry = { failed: [], console: [], missing: [], anchors: [], injected: [], filters: [], images: 0, links: 0 };
    report.pages[rel] = entry;
    if (!fs.existsSync(file)) { entry.failed.push(`page missing: ${rel}`); continue; }
    const page = await browser.newPage();
    page.on('requestfailed', (r) => entry.failed.push(`${r.url()} ${r.failure()?.errorText}`));
    page.on('response', (r) => { if (r.status() >= 400) entry.failed.push(`${r.url()} HTTP ${r.status()}`); });
    page.on('console', (m) => { if (m.type() === 'error') entry.console.push(m.text()); });
    page.on('pageerror', (e) => entry.console.push(`pageerror: ${e.message}`));
    await page.goto(pathToFileURL(file).href, { waitUntil: 'load', timeout: 60000 });
    const info = await page.evaluate(() => {
      const imgs = [...document.images].map((i) => ({ src: i.getAttribute('src'), url: i.src, ok: i.complete && i.naturalWidth > 0 }));
      const links = [...document.querySelectorAll('a[href]')].map((a) => ({ href: a.getAttribute('href'), url: a.href }));
      const anchors = links.filter((l) => l.href.startsWith('#') && l.href.length > 1)
        .filter((l) => !document.getElementById(decodeURIComponent(l.href.slice(1)))).map((l) => l.href);
      return {
        imgs, links, anchors,
        pwned: window.__pwned !== undefined,
        pwnedNodes: document.querySelectorAll('[data-pwned], [onerror]').length,
        scripts: document.scripts.length,
      };
    });
    entry.images = info.imgs.length;
    entry.links = info.links.length;
    entry.scripts = info.scripts;
    entry.anchors = info.anchors;
    for (const img of info.imgs) if (!img.ok) entry.missing.push(`image not rendered: ${img.src}`);
    if (info.pwned) entry.injected.push('window.__pwned was set by model text');
    if (info.pwnedNodes) entry.injected.push(`${info.pwnedNodes} injected element(s) in the DOM`);
    for (const l of [...info.links.map((x) => ({ ref: x.href, url: x.url })), ...info.imgs.map((x) => ({ ref: x.src, url: x.url }))]) {
      if (!l.url.startsWith('file:')) continue;
      if (path.isAbsolute(l.ref) || /^[a-z]+:/i.test(l.ref)) entry.missing.push(`absolute link: ${l.ref}`);
      const target = fileURLToPath(l.url.split('#')[0].split('?')[0]);
      if (!fs.existsSync(target)) { entry.missing.push(`missing file: ${l.ref}`); continue; }
      if (target.endsWith('.html') && target.startsWith(root + path.sep)) queue.push(target);
    }
    const selects = await page.$$eval('select[data-filter]', (ss) => ss.map((s) => ({
      filter: s.dataset.filter, values: [...s.options].map((o) => o.value).filter((v) => v !== '') })));
    for (const s of selects) {
      for (const value of s.values) {
        await page.select(`select[data-filter="${s.filter}"]`, value);
        const visible = await page.$$eval('#samples tbody tr', (rows) => rows.filter((r) => !r.hidden && r.offsetParent !== null).length);
        const shown = await page.$eval('#shown', (e) => e.textContent);
        entry.filters.push({ filter: s.filter, value, visible, shown });
      }
      await page.select(`select[data-filter="${s.filter}"]`, '');
    }
    if (selects.length) {
      entry.total_rows = await page.$$eval('#samples tbody tr', (rows) => rows.filter((r) => !r.hidden).length);
    }
    await page.close();
  }
} finally {
  await browser.close();
  fs.rmSync(userDataDir, { recursive: true, force: true });
}
fs.writeFileSync(outJson, JSON.stringify(report, null, 1));
