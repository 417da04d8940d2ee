// ecom's live dashboard, the browser side: lists the panels `ecom dashboard` serves
// (GET /api/panels), polls each panel's rows (GET /api/panels/<id>/data?range=…) and draws
// them with vega-embed. The charts are the Vega-Lite specs of kibana/panels/, the same files
// Kibana renders; the server swaps their Elasticsearch query for the rows it fetched.
'use strict';

(() => {
  const REFRESH_MS = 5000;
  const FETCH_TIMEOUT_MS = 15000;
  const RANGES = { '15m': 'the last 15 min', '1h': 'the last 1 h', '24h': 'the last 24 h', all: 'any time' };
  const DEFAULT_RANGE = '1h';
  // ast: vega's expression interpreter instead of generated code, so a Content-Security-Policy
  // without 'unsafe-eval' still draws; no injected <style> elements either (style.css has them).
  // Legends go below the plot, in fewer columns on a phone (re-drawn when the width crosses).
  const NARROW = window.matchMedia('(max-width: 480px)');
  const embedOptions = () => ({
    actions: false,
    renderer: 'svg',
    mode: 'vega-lite',
    ast: true,
    defaultStyle: false,
    tooltip: { disableDefaultStyle: true },
    config: { legend: { orient: 'bottom', direction: 'horizontal', columns: NARROW.matches ? 3 : 4, labelLimit: 100 } },
  });

  const $ = (id) => document.getElementById(id);
  const state = {
    range: rangeFromUrl(),
    paused: false,
    timer: null,
    running: false,
    again: false,
    panels: [],
  };

  function rangeFromUrl() {
    const r = new URLSearchParams(location.search).get('range');
    return Object.hasOwn(RANGES, r) ? r : DEFAULT_RANGE;
  }

  async function getJson(url) {
    const res = await fetch(url, { signal: AbortSignal.timeout(FETCH_TIMEOUT_MS), cache: 'no-store' });
    if (!res.ok) {
      const text = (await res.text()).slice(0, 300);
      throw new Error(`${url} answered HTTP ${res.status}${text ? `: ${text}` : ''}`);
    }
    return res.json();
  }

  function el(tag, attrs = {}, text) {
    const e = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, v);
    if (text !== undefined) e.textContent = text;
    return e;
  }

  function buildPanel(def) {
    const id = String(def.id);
    const section = el('section', { class: 'panel', id: `panel-${id}`, 'data-panel-id': id, 'data-state': 'loading', 'aria-labelledby': `title-${id}` });
    section.append(
      el('h2', { id: `title-${id}` }, def.title),
      el('p', { class: 'description' }, def.description),
    );
    const headline = el('p', { class: 'headline' });
    headline.hidden = true;
    const chart = el('div', { class: 'chart' });
    const message = el('p', { class: 'message' }, 'Loading…');
    section.append(headline, chart, message);
    return { id, def, section, headline, chart, message, view: null };
  }

  // The spec as vega-embed takes it: the rows inline under the name the server gave the data
  // ("rows"), so later refreshes can swap the values in the running view. The panel's heading
  // already shows the title; $schema goes so vega-embed does not warn that Kibana's v5 is older
  // than ours.
  function specWithRows(spec, rows) {
    const s = structuredClone(spec);
    delete s.$schema;
    delete s.title;
    s.data = { name: (spec.data && spec.data.name) || 'rows', values: rows };
    return s;
  }

  function showMessage(p, kind, text) {
    if (p.view) {
      p.view.finalize();
      p.view = null;
    }
    p.chart.replaceChildren();
    p.chart.hidden = true;
    p.message.hidden = false;
    p.message.textContent = text;
    p.section.dataset.state = kind;
  }

  async function showRows(p, rows) {
    p.rows = rows;
    if (p.embedding) await p.embedding; // a redraw is under way: update what it draws
    if (p.view) {
      p.view.data(p.dataName, rows);
      await p.view.runAsync();
    } else {
      p.chart.hidden = false;
      p.message.hidden = true;
      const spec = specWithRows(p.def.spec, rows);
      p.dataName = spec.data.name;
      p.embedding = vegaEmbed(p.chart, spec, embedOptions());
      try {
        p.view = (await p.embedding).view;
      } finally {
        p.embedding = null;
      }
    }
    p.section.dataset.state = 'chart';
    p.section.dataset.rows = String(rows.length);
  }

  async function refreshPanel(p, range) {
    let data;
    try {
      data = await getJson(`/api/panels/${encodeURIComponent(p.id)}/data?range=${range}`);
    } catch (e) {
      data = { rows: [], error: `could not load this panel: ${e.message}` };
    }
    if (range !== state.range) return; // the user chose another range meanwhile
    const rows = Array.isArray(data.rows) ? data.rows : [];
    p.headline.hidden = typeof data.headline !== 'string';
    const asOf = Number.isFinite(data.as_of_ms) ? ` (as of ${new Date(data.as_of_ms).toLocaleString()}, the newest event seen)` : '';
    p.headline.textContent = data.headline ? data.headline + asOf : '';
    try {
      if (data.error) showMessage(p, 'error', data.error);
      else if (data.empty) showMessage(p, 'empty', data.message || 'No data yet.');
      else if (rows.length === 0) showMessage(p, 'empty', range === 'all' ? 'No data yet.' : `No data in ${RANGES[range]} — choose a longer time range.`);
      else await showRows(p, rows);
    } catch (e) {
      showMessage(p, 'error', `could not draw this panel: ${e.message}`);
    }
  }

  function showHealth(h) {
    const es = $('es-status');
    const s = h && typeof h.elasticsearch === 'string' ? h.elasticsearch : 'unknown';
    es.dataset.es = s === 'ok' ? 'ok' : 'down';
    es.textContent = `Elasticsearch: ${s}`;
  }

  async function refresh() {
    if (state.running) {
      state.again = true;
      return;
    }
    clearTimeout(state.timer);
    state.running = true;
    const range = state.range;
    const started = performance.now();
    try {
      const health = getJson('/api/health').catch((e) => ({ elasticsearch: `unknown (${e.message})` }));
      await Promise.all(state.panels.map((p) => refreshPanel(p, range)));
      showHealth(await health);
      const ms = Math.round(performance.now() - started);
      $('refreshed').textContent = `updated ${new Date().toLocaleTimeString()} (${ms} ms)${state.paused ? ', paused' : ''}`;
    } finally {
      state.running = false;
      if (state.again) {
        state.again = false;
        refresh();
      } else {
        schedule();
      }
    }
  }

  function schedule() {
    clearTimeout(state.timer);
    if (!state.paused) state.timer = setTimeout(refresh, REFRESH_MS);
  }

  function setPaused(paused) {
    state.paused = paused;
    const b = $('pause');
    b.textContent = paused ? 'Resume' : 'Pause';
    b.setAttribute('aria-label', paused ? 'Resume auto-refresh' : 'Pause auto-refresh');
    if (paused) {
      clearTimeout(state.timer);
      $('refreshed').textContent += ', paused';
    } else {
      refresh();
    }
  }

  function setRange(range) {
    state.range = range;
    const url = new URL(location.href);
    url.searchParams.set('range', range);
    history.replaceState(null, '', url);
    for (const p of state.panels) p.section.dataset.state = 'loading';
    refresh();
  }

  function redrawCharts() {
    for (const p of state.panels) {
      if (!p.view) continue;
      p.view.finalize();
      p.view = null;
      p.chart.replaceChildren();
      showRows(p, p.rows).catch((e) => showMessage(p, 'error', `could not draw this panel: ${e.message}`));
    }
  }

  async function start() {
    NARROW.addEventListener('change', redrawCharts);
    $('range').value = state.range;
    $('range').addEventListener('change', (e) => setRange(e.target.value));
    $('pause').addEventListener('click', () => setPaused(!state.paused));
    const main = $('panels');
    let defs;
    try {
      defs = await getJson('/api/panels');
    } catch (e) {
      $('page-message').textContent = `Could not list the panels: ${e.message}. Is \`ecom dashboard\` running? Reload to try again.`;
      main.setAttribute('aria-busy', 'false');
      return;
    }
    state.panels = defs.map(buildPanel);
    main.replaceChildren(...state.panels.map((p) => p.section));
    if (state.panels.length === 0) main.append(el('p', { class: 'message' }, 'The server lists no panels.'));
    main.setAttribute('aria-busy', 'false');
    await refresh();
  }

  document.addEventListener('DOMContentLoaded', start);
})();
