// The fleet page the collector serves at `/`: the same rows as `vgw fleet`, what needs a look
// first, and encounters per hour per venue as a stacked bar chart. One self-contained document
// (no scripts or fonts from elsewhere: the backend may have no internet); it reads /api/fleet
// and /api/venue-hours and refreshes itself. Text goes in through textContent, never as HTML.
export const FLEET_PAGE = `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>venue-gateway fleet</title>
<style>
  body { font: 14px/1.4 system-ui, sans-serif; margin: 16px 24px; color: #1f2328; background: #fff; }
  h1 { font-size: 20px; margin: 0 0 8px; }
  h2 { font-size: 16px; margin: 20px 0 8px; }
  .chips span { display: inline-block; padding: 4px 10px; margin: 0 6px 6px 0; border-radius: 12px; color: #fff; font-weight: 600; }
  .chips .total { background: #57606a; } .chips .gaps { background: #9a6700; }
  .online { background: #1a7f37; } .offline { background: #cf222e; } .unknown { background: #6e7781; }
  table { border-collapse: collapse; width: 100%; }
  th, td { text-align: left; padding: 4px 8px; border-bottom: 1px solid #d0d7de; white-space: nowrap; }
  th { background: #f6f8fa; white-space: normal; }
  .table { overflow-x: auto; }
  td.state span { padding: 1px 8px; border-radius: 10px; color: #fff; }
  tr.row-offline td { background: #ffebe9; }
  td.missing { color: #9a6700; font-weight: 600; }
  #legend span { display: inline-block; margin-right: 12px; }
  #legend i { display: inline-block; width: 10px; height: 10px; margin-right: 4px; }
  #error { color: #cf222e; }
  .muted { color: #57606a; }
</style>
</head>
<body>
<h1>venue-gateway fleet</h1>
<div class="muted">as of <span id="at">…</span>; refreshes every 15 s</div>
<div id="error"></div>
<div class="chips" id="summary"></div>
<h2>Rollouts</h2>
<div class="table"><table>
  <thead><tr><th>change</th><th>state</th><th>started</th><th>units</th><th>canary</th><th>applied</th><th>waiting</th><th>offline</th><th>failed</th><th>pending</th><th>why it stopped / first failures</th></tr></thead>
  <tbody id="rollouts"></tbody>
</table></div>
<h2>Encounters per hour, busiest venues (last 24 hours, UTC)</h2>
<svg id="chart" width="960" height="240" role="img" aria-label="encounters per hour per venue"></svg>
<div id="legend"></div>
<h2>Gateways <span class="muted" id="shown"></span></h2>
<div class="table"><table>
  <thead><tr><th>gateway</th><th>venue</th><th>state</th><th>since</th><th>last batch</th><th>missing batches</th>
  <th>backlog (encounters / batches)</th><th>clock</th><th>radio</th><th>beacon</th><th>software</th><th>config</th></tr></thead>
  <tbody id="rows"></tbody>
</table></div>
<script>
'use strict';
var PALETTE = ['#0969da', '#8250df', '#1a7f37', '#bf3989', '#bc4c00', '#0a7f8c', '#953800', '#4d2d00'];
var OTHERS = '#afb8c1';
var ROWS_SHOWN = 500;
var SVG = 'http://www.w3.org/2000/svg';

function el(tag, text, cls) {
  var e = document.createElement(tag);
  if (text !== undefined && text !== null) e.textContent = String(text);
  if (cls) e.className = cls;
  return e;
}
function svg(tag, attrs, text) {
  var e = document.createElementNS(SVG, tag);
  for (var k in attrs) e.setAttribute(k, String(attrs[k]));
  if (text !== undefined) e.textContent = String(text);
  return e;
}
function ago(s) {
  if (s === null) return '—';
  if (s < 120) return s + ' s ago';
  if (s < 7200) return Math.round(s / 60) + ' min ago';
  if (s < 172800) return Math.round(s / 3600) + ' h ago';
  return Math.round(s / 86400) + ' d ago';
}
function when(iso) { return iso ? iso.replace('T', ' ').slice(0, 19) + 'Z' : '—'; }

function summary(s) {
  var box = document.getElementById('summary');
  box.replaceChildren(
    el('span', s.gateways + ' gateways', 'total'), el('span', s.online + ' online', 'online'),
    el('span', s.offline + ' offline', 'offline'), el('span', s.unknown + ' no status', 'unknown'),
    el('span', s.withMissingBatches + ' with missing batches', 'gaps'));
  // one chip per software version the units report, most units first
  Object.keys(s.versions || {}).sort(function (a, b) { return s.versions[b] - s.versions[a]; }).forEach(function (v) {
    var chip = el('span', s.versions[v] + ' on ' + v, 'version');
    chip.dataset.version = v;
    box.append(chip);
  });
}

function table(fleet) {
  var body = document.getElementById('rows');
  var rows = fleet.gateways.slice(0, ROWS_SHOWN);
  body.replaceChildren.apply(body, rows.map(function (r) {
    var tr = el('tr', null, 'row-' + r.state);
    tr.dataset.gateway = r.gateway;
    var state = el('td', null, 'state');
    var badge = el('span', r.state === 'offline' && r.reason ? 'offline (' + r.reason + ')' : r.state === 'unknown' ? 'no status' : r.state, r.state);
    state.appendChild(badge);
    var missing = el('td', r.seqMissing, r.seqMissing > 0 ? 'missing' : '');
    tr.append(el('td', r.gateway), el('td', r.venue), state, el('td', when(r.since)), el('td', ago(r.lastBatchAgoS)), missing,
      el('td', r.backlog ? r.backlog.pending + ' / ' + r.backlog.outboxBatches : '—'),
      el('td', r.clock ? (r.clock.synchronized ? 'synced' : 'NOT synced') + ' (' + r.clock.source + ')' : '—'),
      el('td', r.radio || '—'), el('td', r.beacon || '—'), el('td', r.software || '—'), el('td', (r.config || '—') + (r.certificateWarning ? ' · ' + r.certificateWarning : '')));
    return tr;
  }));
  document.getElementById('shown').textContent = fleet.gateways.length > ROWS_SHOWN
    ? '(the ' + ROWS_SHOWN + ' that need a look first, of ' + fleet.gateways.length + ': vgw fleet --json lists all)' : '';
}

function rollouts(list) {
  var body = document.getElementById('rollouts');
  if (!list.length) {
    var none = el('td', 'none yet: vgw fleet config set starts one', 'muted');
    none.colSpan = 11;
    var tr = el('tr');
    tr.append(none);
    return body.replaceChildren(tr);
  }
  body.replaceChildren.apply(body, list.map(function (r) {
    var tr = el('tr', null, r.state === 'aborted' ? 'row-offline' : '');
    tr.dataset.rollout = r.id;
    var why = (r.reason ? r.reason + (r.failures.length ? '; ' : '') : '') + r.failures.map(function (f) { return f.gateway + ': ' + f.reason; }).join('; ');
    tr.append(el('td', r.change), el('td', r.state, 'rollout-state'), el('td', when(r.createdAt)), el('td', r.units), el('td', r.canary), el('td', r.applied, 'rollout-applied'),
      el('td', r.sent), el('td', r.offline), el('td', r.failed, r.failed > 0 ? 'missing' : ''), el('td', r.pending), el('td', why || '—'));
    return tr;
  }));
}

function chart(c) {
  var box = document.getElementById('chart');
  var W = 960, H = 240, left = 56, bottom = 24, top = 8;
  var n = c.hours.length, slot = (W - left - 8) / n, bar = Math.max(2, slot * 0.75);
  var max = Math.max.apply(null, c.total.concat([1]));
  var scale = (H - bottom - top) / max;
  var parts = [];
  parts.push(svg('line', { x1: left, y1: H - bottom, x2: W - 8, y2: H - bottom, stroke: '#57606a' }));
  parts.push(svg('text', { x: left - 6, y: top + 10, 'text-anchor': 'end', 'font-size': 11 }, max));
  parts.push(svg('text', { x: left - 6, y: H - bottom, 'text-anchor': 'end', 'font-size': 11 }, 0));
  var series = c.venues.map(function (v, i) { return { name: v.venue, perHour: v.perHour, color: PALETTE[i % PALETTE.length] }; });
  series.push({ name: 'other venues', perHour: c.others, color: OTHERS });
  for (var h = 0; h < n; h++) {
    var x = left + h * slot + (slot - bar) / 2, y = H - bottom;
    series.forEach(function (s) {
      var v = s.perHour[h];
      if (v <= 0) return;
      var hgt = v * scale;
      y -= hgt;
      var r = svg('rect', { x: x.toFixed(1), y: y.toFixed(1), width: bar.toFixed(1), height: hgt.toFixed(1), fill: s.color });
      r.appendChild(svg('title', {}, s.name + ': ' + v));
      parts.push(r);
    });
    if (h % 3 === 0) parts.push(svg('text', { x: (x + bar / 2).toFixed(1), y: H - 8, 'text-anchor': 'middle', 'font-size': 10 }, new Date(c.hours[h]).toISOString().slice(11, 13) + 'h'));
  }
  box.replaceChildren.apply(box, parts);
  var legend = document.getElementById('legend');
  legend.replaceChildren.apply(legend, series.filter(function (s, i) { return i < c.venues.length || c.othersVenues > 0; }).map(function (s, i) {
    var total = s.perHour.reduce(function (a, b) { return a + b; }, 0);
    var item = el('span', (i < c.venues.length ? s.name : c.othersVenues + ' other venues') + ': ' + total);
    var swatch = el('i');
    swatch.style.background = s.color;
    item.prepend(swatch);
    return item;
  }));
}

function load() {
  Promise.all([fetch('api/fleet').then(json), fetch('api/venue-hours?hours=24&top=8').then(json)]).then(function (r) {
    document.getElementById('error').textContent = '';
    document.getElementById('at').textContent = when(r[0].at);
    summary(r[0].summary);
    rollouts(r[0].rollouts);
    table(r[0]);
    chart(r[1]);
    document.body.dataset.loaded = 'yes';
  }).catch(function (err) {
    document.getElementById('error').textContent = 'could not load the fleet: ' + err.message;
  });
}
function json(res) {
  if (!res.ok) throw new Error(res.status + ' ' + res.statusText);
  return res.json();
}
load();
setInterval(load, 15000);
</script>
</body>
</html>
`;
