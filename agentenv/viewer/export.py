"""One episode as a single self-contained HTML file, for bug reports: inline CSS, the episode's JSON and a
small inline renderer; no external URL, so it opens offline and shows exactly what the viewer showed."""

from __future__ import annotations

import html
import json
from typing import Any

__all__ = ["export_episode_html"]

_CSS = """
body{font:14px/1.45 system-ui,sans-serif;margin:1.5em auto;max-width:1100px;color:#222;padding:0 1em}
h1{font-size:1.3em;word-break:break-all} table.meta td{padding:1px 10px 1px 0;vertical-align:top}
.turn{border:1px solid #ccc;border-radius:6px;margin:1em 0;padding:.6em .9em}
.msg{white-space:pre-wrap;margin:.3em 0;padding:.3em .5em;background:#f6f6f6;border-radius:4px}
.role{font-weight:600;color:#555;margin-right:.4em}.action{background:#e8f0ff}
.tok{font-family:ui-monospace,monospace;white-space:pre-wrap;border-radius:2px;padding:0 1px}
.masked{outline:1px dashed #999;opacity:.6}.trained{outline:1px solid #1a7f37}
.legend span{margin-right:1em}.note{color:#a40}.tokens{line-height:1.9;margin:.4em 0}
img{max-width:100%;border:1px solid #ddd}.imagined{border-style:dashed;background:#fffbe6}
"""

_JS = r"""
const E = JSON.parse(document.getElementById('episode').textContent);
const el = (tag, cls, text) => { const e = document.createElement(tag); if (cls) e.className = cls;
  if (text !== undefined && text !== null) e.textContent = String(text); return e; };
const content = c => typeof c === 'string' ? c : Array.isArray(c) ?
  c.map(p => p.type === 'text' ? p.text : p.type === 'image_url' ? '[image]' : JSON.stringify(p)).join('\n')
  : JSON.stringify(c);
function messages(parent, msgs) { for (const m of msgs || []) { const d = el('div', 'msg');
  d.append(el('span', 'role', m.role + ':'), document.createTextNode(content(m.content))); parent.append(d); } }
function heat(lp) { if (lp === null || lp === undefined) return '#eee';
  const p = Math.exp(lp); return `hsl(${Math.round(120 * p)},70%,82%)`; }
const root = document.getElementById('root');
const meta = el('table', 'meta');
for (const k of ['trajectory_id','group_id','task_id','env_id','policy_id','policy_version','status','success',
                 'reward','terminated','truncated','failure_cause','error','kind','tree_id',
                 'parent_trajectory_id','branch_turn']) {
  if (E[k] === null || E[k] === undefined || E[k] === '') continue;
  const tr = el('tr'); tr.append(el('td', null, k), el('td', null, E[k])); meta.append(tr); }
root.append(meta);
for (const n of E.notes || []) root.append(el('p', 'note', n));
const legend = el('p', 'legend'); const a = el('span', 'tok trained', 'trained token');
const b = el('span', 'tok masked', 'masked token'); legend.append(a, b,
  el('span', null, 'colour: probability of the sampled token (red low, green high)')); root.append(legend);
for (const t of E.turns || []) {
  const box = el('div', 'turn' + (t.is_imagined ? ' imagined' : ''));
  box.append(el('h3', null, `turn ${t.index}` + (t.is_imagined ? ' (imagined)' : '') + ` · actor ${t.actor}` +
    ` · reward ${t.reward}` + (t.advantage !== null && t.advantage !== undefined ?
    ` · advantage ${t.advantage}` : '')));
  messages(box, t.observation);
  for (const src of t.images || []) { const i = el('img'); i.src = src; box.append(i); }
  const act = el('div', 'msg action'); act.append(el('span', 'role', 'action:'), document.createTextNode(t.action));
  box.append(act);
  if (t.teacher_action) { const d = el('div', 'msg'); d.append(el('span', 'role', 'teacher:'),
    document.createTextNode(t.teacher_action)); box.append(d); }
  if (t.tool_calls && t.tool_calls.length) box.append(el('pre', 'msg', JSON.stringify(t.tool_calls, null, 1)));
  const toks = (t.tokens || {}).completion || [];
  if (toks.length) { const line = el('div', 'tokens');
    line.append(el('span', 'role', `tokens (${t.tokens.trained_count} trained):`));
    for (const k of toks) { const s = el('span', 'tok ' + (k.trained ? 'trained' : 'masked'),
        k.text !== null && k.text !== undefined ? k.text : `⟨${k.id}⟩`);
      s.style.background = heat(k.logprob);
      s.title = `id ${k.id}  logprob ${k.logprob}  entropy ${k.entropy}`; line.append(s); }
    box.append(line); }
  if (t.feedback && t.feedback.length) { box.append(el('div', 'role', 'env feedback:')); messages(box, t.feedback); }
  root.append(box); }
"""


def export_episode_html(episode_json: dict[str, Any]) -> str:
    """The HTML page for one episode as returned by the episode API (``turns`` with ``tokens``)."""
    data = json.dumps(episode_json, ensure_ascii=False, default=repr)
    # inside <script> only "</" can end the element early; escaping it keeps any episode text inert
    data = data.replace("</", "<\\/").replace("<!--", "<\\!--")
    title = html.escape(f"episode {episode_json.get('trajectory_id', '')}")
    return (f"<!doctype html>\n<html lang=en><head><meta charset=utf-8><title>{title}</title>"
            f"<style>{_CSS}</style></head>\n<body><h1>{title}</h1><div id=root></div>\n"
            f'<script type="application/json" id="episode">{data}</script>\n<script>{_JS}</script>\n'
            "</body></html>\n")
