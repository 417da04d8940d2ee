// The live dashboard in a real browser: Debian's headless Chromium, driven over DevTools by
// puppeteer-core, against a running `ecom dashboard` and the Elasticsearch it reads (no mock).
//   ECOM_DASHBOARD_URL  the page (default http://127.0.0.1:8088)
//   ES_URL              Elasticsearch, queried directly to check the page's numbers
//                       (default http://127.0.0.1:9200)
//   ECOM_SCREENSHOT_DIR where the laptop and phone screenshots go (none when unset)
//   CHROMIUM            the browser (default /usr/bin/chromium)
//   ECOM_MODELS_DIR     the models the dashboard serves from (default models/)
// Run: node --test test/browser.test.mjs
import assert from 'node:assert/strict';
import { mkdir, readdir, readFile } from 'node:fs/promises';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import puppeteer from 'puppeteer-core';

const DASHBOARD = (process.env.ECOM_DASHBOARD_URL || 'http://127.0.0.1:8088').replace(/\/$/, '');
const ES = (process.env.ES_URL || 'http://127.0.0.1:9200').replace(/\/$/, '');
const SHOT_DIR = process.env.ECOM_SCREENSHOT_DIR || '';
const CHROMIUM = process.env.CHROMIUM || '/usr/bin/chromium';
const MODELS = process.env.ECOM_MODELS_DIR || path.join(import.meta.dirname, '../../models');

/** The panel whose rows the test reconciles with Elasticsearch. */
const EVENTS_PANEL = 'events-per-minute-by-kind';
const WAIT_MS = 12_000;
const SETTLED = ['chart', 'empty', 'error'];

async function getJson(url, init = {}) {
  const res = await fetch(url, { ...init, signal: AbortSignal.timeout(5_000) });
  const text = await res.text();
  assert.ok(res.ok, `${init.method ?? 'GET'} ${url} answered HTTP ${res.status}: ${text.slice(0, 300)}`);
  return JSON.parse(text);
}

/** Enriched events with an event time, the documents the events panel's date_histogram counts. */
async function esEventCount() {
  const body = JSON.stringify({ query: { exists: { field: 'event_time' } } });
  let r;
  try {
    r = await getJson(`${ES}/ecom-events-*/_count`, { method: 'POST', headers: { 'content-type': 'application/json' }, body });
  } catch (e) {
    throw new Error(`Elasticsearch at ${ES} (ES_URL) did not count the events: ${e.message}`);
  }
  return r.count;
}

/** Elasticsearch's own _count of `query` over `index`. */
async function esCount(index, query) {
  const body = JSON.stringify({ query });
  const r = await getJson(`${ES}/${index}/_count?ignore_unavailable=true&allow_no_indices=true`, { method: 'POST', headers: { 'content-type': 'application/json' }, body });
  return r.count;
}

/** Redis's own answer to a read-only command (redis-cli of the local stack). */
async function redis(...args) {
  const { execFile } = await import('node:child_process');
  const url = process.env.REDIS_URL || 'redis://127.0.0.1:6379';
  return new Promise((resolve, reject) => {
    execFile('redis-cli', ['-u', url, ...args], { timeout: 5_000 }, (e, out) => (e ? reject(e) : resolve(out.trim())));
  });
}

const isDataCall = (url, id, range) => {
  const u = new URL(url);
  return u.pathname === `/api/panels/${id}/data` && (!range || u.searchParams.get('range') === range);
};

/** Resolves when every panel has left "loading", i.e. drew a chart or shows its message. */
async function waitForPanels(page, count) {
  await page.waitForFunction(
    (n, settled) => {
      const panels = [...document.querySelectorAll('section.panel')];
      return panels.length === n && panels.every((p) => settled.includes(p.dataset.state));
    },
    { timeout: WAIT_MS, polling: 100 },
    count,
    SETTLED,
  );
}

/** Debian's Chromium, headless (as root: no sandbox). */
function launchChromium() {
  return puppeteer.launch({
    executablePath: CHROMIUM,
    headless: true,
    args: ['--no-sandbox', '--disable-dev-shm-usage', '--disable-gpu'],
    timeout: 15_000,
    protocolTimeout: 15_000,
  });
}

/** Two animation frames and a pause: time for vega's resize listener to lay the charts out. */
async function settleLayout(page) {
  await page.evaluate(() => new Promise((r) => requestAnimationFrame(() => requestAnimationFrame(r))));
  await new Promise((r) => setTimeout(r, 600));
}

describe('ecom dashboard in headless Chromium', { timeout: 100_000 }, () => {
  let browser;
  let page;
  let panels;
  const problems = []; // console errors, page errors, failed requests: each fails the run
  const dataCalls = []; // [time ms, url] of every panel data request the page made

  before(async () => {
    browser = await launchChromium();
    page = await browser.newPage();
    page.setDefaultTimeout(WAIT_MS);
    page.on('console', (m) => {
      if (m.type() === 'error') problems.push(`console error: ${m.text()} (${m.location()?.url ?? ''})`);
    });
    page.on('pageerror', (e) => problems.push(`page error: ${e.message}`));
    page.on('requestfailed', (r) => {
      // A navigation cancels the fetches still running on the page it leaves.
      if (r.failure()?.errorText !== 'net::ERR_ABORTED') problems.push(`request failed: ${r.url()} ${r.failure()?.errorText}`);
    });
    page.on('response', (r) => {
      if (r.status() >= 400) problems.push(`HTTP ${r.status()} for ${r.url()}`);
    });
    page.on('request', (r) => {
      if (new URL(r.url()).pathname.startsWith('/api/panels/')) dataCalls.push([Date.now(), r.url()]);
    });
    await page.setViewport({ width: 1366, height: 768 });
  }, { timeout: 15_000 });

  after(async () => {
    await browser?.close();
  });

  test('the server lists its panels, each a Vega-Lite spec fed by "rows"', { timeout: 5_000 }, async () => {
    panels = await getJson(`${DASHBOARD}/api/panels`);
    assert.ok(Array.isArray(panels) && panels.length > 0, 'GET /api/panels lists no panel');
    for (const p of panels) {
      for (const k of ['id', 'title', 'description']) assert.equal(typeof p[k], 'string', `panel ${p.id}: ${k}`);
      assert.deepEqual(p.spec?.data, { name: 'rows' }, `panel ${p.id}: spec.data`);
      assert.ok(p.spec.mark || p.spec.layer, `panel ${p.id}: spec has no mark or layer`);
    }
    assert.ok(panels.some((p) => p.id === EVENTS_PANEL), `no panel ${EVENTS_PANEL}`);
  });

  test('every panel draws a chart or says why not, and the console stays clean', { timeout: 15_000 }, async () => {
    assert.ok(panels, 'the panel list is needed first');
    await page.goto(`${DASHBOARD}/?range=all`, { waitUntil: 'load', timeout: WAIT_MS });
    await waitForPanels(page, panels.length);
    const seen = await page.$$eval('section.panel', (sections) =>
      sections.map((s) => {
        const msg = s.querySelector('.message');
        const svg = s.querySelector('.chart svg');
        return {
          id: s.dataset.panelId,
          state: s.dataset.state,
          title: s.querySelector('h2')?.textContent.trim() ?? '',
          description: s.querySelector('.description')?.textContent.trim() ?? '',
          marks: svg ? svg.querySelectorAll('.role-mark > path, .role-mark > line, .role-mark > rect').length : 0,
          svgWidth: svg ? svg.getBoundingClientRect().width : 0,
          message: msg && !msg.hidden && msg.offsetHeight > 0 ? msg.textContent.trim() : '',
        };
      }),
    );
    assert.deepEqual(seen.map((s) => s.id), panels.map((p) => p.id), 'the page shows the panels the server lists, in order');
    for (const s of seen) {
      assert.ok(s.title && s.description, `panel ${s.id} has no title or description`);
      if (s.state === 'chart') {
        assert.ok(s.marks > 0, `panel ${s.id} drew an SVG with no marks`);
        assert.ok(s.svgWidth > 200, `panel ${s.id}'s chart is ${s.svgWidth}px wide`);
      } else {
        assert.ok(s.message.length > 0, `panel ${s.id} is ${s.state} but shows no message`);
      }
    }
    const states = Object.fromEntries(seen.map((s) => [s.id, s.state === 'chart' ? `chart (${s.marks} marks)` : `${s.state}: ${s.message}`]));
    console.log('panels:', states);
    assert.deepEqual(problems, [], 'the browser reported problems');
  });

  test(`"${EVENTS_PANEL}" shows as many events as Elasticsearch counts (range "everything")`, { timeout: 12_000 }, async () => {
    await page.goto(`${DASHBOARD}/`, { waitUntil: 'load', timeout: WAIT_MS });
    await page.waitForSelector(`#panel-${EVENTS_PANEL}`);
    const countBefore = await esEventCount();
    const asked = Date.now();
    const response = page.waitForResponse((r) => isDataCall(r.url(), EVENTS_PANEL, 'all'), { timeout: WAIT_MS });
    await page.select('#range', 'all');
    const data = await (await response).json();
    const countAfter = await esEventCount();
    assert.ok(!data.error, `the panel's data call failed: ${data.error}`);
    const rows = data.rows ?? [];
    const total = rows.reduce((sum, r) => sum + r.doc_count, 0);
    // With events still arriving the page's snapshot lies between the two direct counts; on a
    // quiet stack (after a demo run) both are the same number and the page must equal it.
    if (countBefore === countAfter) assert.equal(total, countBefore, 'events on the page vs Elasticsearch _count');
    else assert.ok(countBefore <= total && total <= countAfter, `page total ${total} outside [${countBefore}, ${countAfter}] while events arrived`);
    console.log(`events: page ${total} in ${rows.length} minutes, Elasticsearch ${countBefore}..${countAfter} (asked at ${new Date(asked).toISOString()})`);
    // ...and the page drew those rows.
    const wanted = rows.length === 0 ? 'empty' : 'chart';
    await page.waitForFunction(
      (id, state) => document.getElementById(`panel-${id}`)?.dataset.state === state,
      { timeout: WAIT_MS },
      EVENTS_PANEL,
      wanted,
    );
    assert.equal(new URL(page.url()).searchParams.get('range'), 'all', 'the chosen range is kept in the URL');
    assert.deepEqual(problems, [], 'the browser reported problems');
  });

  /** The page's next data answer for panel `id` at range "everything" (the auto-refresh). */
  async function nextData(id) {
    const res = await page.waitForResponse((r) => isDataCall(r.url(), id, 'all'), { timeout: WAIT_MS });
    const data = await res.json();
    assert.ok(!data.error, `panel ${id}: ${data.error}`);
    return data;
  }

  test('the funnel on the page equals Elasticsearch\'s own counts of each step', { timeout: 15_000 }, async () => {
    const data = await nextData('session-funnel');
    const steps = {
      '1 viewed a product': { range: { 'kind_counts.product_view': { gte: 1 } } },
      '2 added to cart': { range: { 'kind_counts.add_to_cart': { gte: 1 } } },
      '3 started checkout': { range: { 'kind_counts.checkout_start': { gte: 1 } } },
      '4 purchased': { term: { purchased: true } },
    };
    const page = Object.fromEntries(data.rows.map((r) => [r.key, r.doc_count]));
    const direct = {};
    for (const [step, q] of Object.entries(steps)) direct[step] = await esCount('ecom-sessions-*', { bool: { filter: [{ exists: { field: 'start_ms' } }, q] } });
    assert.deepEqual(page, direct, 'funnel steps: page vs Elasticsearch _count');
    assert.ok(direct['1 viewed a product'] > 0, 'the demo closed sessions with product views');
    console.log('funnel:', page);
  });

  test('the records read on the page reconcile with Elasticsearch: enriched + rejected by reason', { timeout: 15_000 }, async () => {
    const data = await nextData('records-by-outcome');
    const page = Object.fromEntries(data.rows.map((r) => [r.key, r.doc_count]));
    const direct = { ENRICHED: await esCount('ecom-events-*', { exists: { field: 'ingested_at' } }) };
    const reasons = await getJson(`${ES}/ecom-invalid-*/_search?ignore_unavailable=true&allow_no_indices=true`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ size: 0, aggs: { r: { terms: { field: 'reason', size: 100 } } } }),
    });
    for (const b of reasons.aggregations?.r?.buckets ?? []) direct[b.key] = await esCount('ecom-invalid-*', { bool: { filter: [{ exists: { field: 'ingested_at' } }, { term: { reason: b.key } }] } });
    for (const k of Object.keys(direct)) if (direct[k] === 0) delete direct[k];
    assert.deepEqual(page, direct, 'records by outcome: page vs Elasticsearch _count');
    assert.ok(Object.keys(direct).length > 1, 'the demo run has dead letters (its hostile and malformed records)');
    console.log('records read:', page);
  });

  test('the live panel shows the open sessions Redis holds', { timeout: 15_000 }, async () => {
    const data = await nextData('live-visitors');
    const open = Number(await redis('ZCARD', 'ecom:guard:live:sessions'));
    assert.ok(open > 0, 'Guard kept open sessions during the demo run');
    assert.match(data.headline ?? '', new RegExp(`^${open} sessions open now`), 'headline vs Redis ZCARD');
    assert.ok(data.rows.length > 0 && data.rows.every((r) => r.visitors > 0), 'visitors per minute');
    await page.waitForFunction((n) => document.querySelector('#panel-live-visitors .headline')?.textContent.startsWith(`${n} sessions open now`), { timeout: WAIT_MS }, open);
  });

  test('the calibration panel holds every scored session and the serving model\'s own bins', { timeout: 15_000 }, async () => {
    const version = (await readFile(path.join(MODELS, 'CURRENT'), 'utf8')).trim();
    const data = await nextData('live-calibration');
    const live = data.rows.filter((r) => !r.series).reduce((n, r) => n + r.doc_count, 0);
    const offline = data.rows.filter((r) => r.series);
    assert.equal(live, await esCount('ecom-sessions-*', { exists: { field: 'purchase_probability' } }), 'scored sessions: page vs Elasticsearch _count');
    assert.ok(live > 0, 'the demo closed scored sessions');
    assert.ok(offline.length > 0 && offline.every((r) => r.series.includes(version)), `offline bins of ${version}`);
    assert.match(data.headline ?? '', new RegExp(`serving model ${version} .*ROC AUC 0\\.\\d+`));
  });

  test('the live quality panel charts every window the job published, beside offline numbers', { timeout: 15_000 }, async () => {
    const data = await nextData('live-model-quality');
    const live = data.rows.filter((r) => !r._source.offline);
    const offline = data.rows.filter((r) => r._source.offline);
    assert.ok(live.length > 0, 'the demo closed quality windows');
    assert.equal(live.length, await esCount('ecom-quality-*', { match_all: {} }), 'windows: page vs Elasticsearch _count');
    assert.ok(live.every((r) => r._source.sessions > 0 && typeof r._source.log_loss === 'number'), 'each window counts sessions');
    // Each charted version whose folder is in ECOM_MODELS_DIR gets its dashed rule, and only
    // those (the end-to-end tests score with models of their own, elsewhere).
    const here = new Set(await readdir(MODELS));
    assert.ok(offline.every((r) => here.has(r._source.model_version) && r._source.roc_auc > 0.5), 'offline ROC AUC rows');
    for (const v of new Set(live.map((r) => r._source.model_version).filter((v) => here.has(v)))) {
      assert.ok(offline.some((r) => r._source.model_version === v), `an offline rule for ${v}`);
    }
    assert.match(data.headline ?? '', /^latest window: \S+( \(shadow\))? ROC AUC ([01]\.\d+|n\/a) over \d+ sessions/);
    // Each version's windows in the range pooled into one calibration check, against the
    // buyers and predictions the page's windows hold.
    const first = live.filter((r) => r._source.model_version === live[0]._source.model_version && r._source.shadow === live[0]._source.shadow);
    const bought = first.reduce((n, r) => n + r._source.purchases, 0);
    const expected = first.reduce((n, r) => n + r._source.expected_purchases, 0);
    assert.ok(live.every((r) => r._source.expected_purchases > 0), 'each window says the buyers it predicted');
    assert.match(data.headline ?? '', /Calibration over the range: \S+( \(shadow\))? (within chance|MISCALIBRATED): \d+ bought against [\d.]+ predicted \(ratio [\d.]+, z [+-][\d.]+\)/);
    assert.ok((data.headline ?? '').includes(`${bought} bought against ${expected.toFixed(1)} predicted`), `the first version's pooled counts: ${bought} against ${expected.toFixed(1)}`);
  });

  test('the feature drift panel gives a PSI per hour and feature against the serving model\'s bins', { timeout: 15_000 }, async () => {
    const version = (await readFile(path.join(MODELS, 'CURRENT'), 'utf8')).trim();
    const reference = JSON.parse(await readFile(path.join(MODELS, version, 'reference.json'), 'utf8'));
    const names = reference.features.map((f) => f.name);
    assert.ok(names.length > 0, 'reference.json names the top features');
    const data = await nextData('live-feature-drift');
    assert.ok(data.rows.length > 0, 'the demo closed sessions with decision features');
    assert.ok(data.rows.every((r) => names.includes(r.feature) && r.psi >= 0 && Number.isFinite(r.psi) && r.sessions > 0), 'one PSI per hour and reference feature');
    assert.match(data.headline ?? '', /^(no feature drift|a shift to watch|drift: |no window has 200 sessions)/);
    assert.ok((data.headline ?? '').includes(version), `the headline names ${version}`);
  });

  test('auto-refresh pauses and resumes from the keyboard', { timeout: 12_000 }, async () => {
    const button = await page.$('#pause');
    await button.focus();
    await page.keyboard.press('Enter');
    assert.equal(await button.evaluate((b) => b.getAttribute('aria-label')), 'Resume auto-refresh');
    const pausedAt = Date.now() + 300; // a refresh that had started may still finish its calls
    await new Promise((r) => setTimeout(r, 5_800));
    const whilePaused = dataCalls.filter(([t]) => t > pausedAt).length;
    assert.equal(whilePaused, 0, 'data calls while paused');
    const resumed = Date.now();
    await page.keyboard.press('Space');
    assert.equal(await button.evaluate((b) => b.getAttribute('aria-label')), 'Pause auto-refresh');
    await page.waitForResponse((r) => isDataCall(r.url(), EVENTS_PANEL), { timeout: 3_000 });
    assert.ok(dataCalls.some(([t]) => t >= resumed), 'resuming refreshes at once');
    assert.deepEqual(problems, [], 'the browser reported problems');
  });

  test('readable at laptop and phone width (screenshots when ECOM_SCREENSHOT_DIR is set)', { timeout: 12_000 }, async () => {
    if (SHOT_DIR) await mkdir(SHOT_DIR, { recursive: true });
    for (const [name, width, height] of [['laptop', 1366, 768], ['phone', 390, 844]]) {
      await page.setViewport({ width, height });
      await settleLayout(page);
      const layout = await page.evaluate(() => ({
        scrollWidth: document.documentElement.scrollWidth,
        innerWidth,
        lefts: [...document.querySelectorAll('section.panel')].map((p) => Math.round(p.getBoundingClientRect().left)),
        svgOverflow: [...document.querySelectorAll('section.panel')]
          .filter((p) => {
            const svg = p.querySelector('.chart svg');
            return svg && svg.getBoundingClientRect().right > p.getBoundingClientRect().right + 1;
          })
          .map((p) => p.dataset.panelId),
      }));
      assert.ok(layout.scrollWidth <= layout.innerWidth, `${name}: page scrolls sideways (${layout.scrollWidth} > ${layout.innerWidth})`);
      assert.deepEqual(layout.svgOverflow, [], `${name}: charts wider than their panel`);
      const columns = new Set(layout.lefts).size;
      if (name === 'phone') assert.equal(columns, 1, 'one column on a phone');
      else assert.ok(columns >= 2, `${columns} column(s) at 1366 px`);
      if (SHOT_DIR) {
        const file = path.join(SHOT_DIR, `dashboard-${name}-${width}x${height}.png`);
        await page.screenshot({ path: file, fullPage: true });
        console.log(`screenshot: ${file}`);
      }
    }
    assert.deepEqual(problems, [], 'the browser reported problems');
  });
});

// The page's two "nothing to chart" states, each from a real `ecom dashboard` of its own: one
// reading indices that do not exist (the sink never wrote under that stem), one whose
// Elasticsearch does not answer (a closed port). Every panel must say so in words.
const ECOM_BIN = process.env.ECOM_BIN || path.join(process.env.HOME ?? '', '.cache/ecom/target/release/ecom');

/** Starts `ecom dashboard` on `addr` with `args`; resolves once it answers /health. */
async function startDashboard(addr, args) {
  const { spawn } = await import('node:child_process');
  const child = spawn(ECOM_BIN, ['dashboard', '--addr', addr, ...args], { stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr.on('data', (d) => { stderr += d; });
  const deadline = Date.now() + 10_000;
  for (;;) {
    try {
      const res = await fetch(`http://${addr}/health`, { signal: AbortSignal.timeout(1_000) });
      if (res.ok) return child;
    } catch { /* not up yet */ }
    if (child.exitCode !== null || Date.now() > deadline) {
      child.kill('SIGKILL');
      throw new Error(`ecom dashboard on ${addr} did not start (${ECOM_BIN}): ${stderr.slice(-500)}`);
    }
    await new Promise((r) => setTimeout(r, 100));
  }
}

describe('ecom dashboard with nothing to show', { timeout: 40_000 }, () => {
  let browser;
  const children = [];

  before(async () => {
    browser = await launchChromium();
  }, { timeout: 15_000 });

  after(async () => {
    await browser?.close();
    for (const c of children) c.kill('SIGTERM');
  });

  for (const [what, addr, args, state, says] of [
    ['indices and Redis keys that hold nothing', '127.0.0.1:18089', ['--es-url', ES, '--index-stem', 'ecom-browser-test-empty', '--redis-key-prefix', 'ecom-browser-test-empty'], 'empty', 'no data yet in '],
    ['an Elasticsearch and a Redis that do not answer', '127.0.0.1:18090', ['--es-url', 'http://127.0.0.1:9', '--redis-url', 'redis://127.0.0.1:9', '--query-timeout-ms', '1000'], 'error', 'is not answering'],
  ]) {
    test(`every panel says so in words: ${what}`, { timeout: 20_000 }, async () => {
      children.push(await startDashboard(addr, args));
      const { length } = await getJson(`http://${addr}/api/panels`);
      const page = await browser.newPage();
      const errors = [];
      page.on('pageerror', (e) => errors.push(e.message));
      await page.goto(`http://${addr}/?range=all`, { waitUntil: 'domcontentloaded' });
      await waitForPanels(page, length);
      const shown = await page.$$eval('section.panel', (ps) => ps.map((p) => {
        // A panel with rows of its own besides the store's (the calibration's offline bins)
        // draws them and says in its headline what the store lacks.
        const headline = p.querySelector('.headline');
        const text = p.dataset.state === 'chart' && headline && !headline.hidden ? headline.textContent : p.querySelector('.message')?.textContent ?? '';
        return [p.dataset.panelId, p.dataset.state === 'chart' && text ? (text.includes('no data yet') ? 'empty' : 'chart') : p.dataset.state, text];
      }));
      for (const [id, s, text] of shown) {
        assert.equal(s, state, `panel ${id} is "${s}", not "${state}": ${text}`);
        assert.ok(text.includes(says), `panel ${id} says "${text}", not "${says}…"`);
        if (state === 'empty') assert.ok(text.includes('ecom-browser-test-empty'), `panel ${id} does not say where it looked: ${text}`);
      }
      if (state === 'error') {
        await page.waitForFunction(() => document.getElementById('es-status')?.dataset.es === 'down', { timeout: WAIT_MS });
      }
      assert.deepEqual(errors, []);
      await page.close();
    });
  }
});
