/* The flame graph card (icicle: the request's outermost frame on top) of a profile, shared by
 * the trace view and an endpoint's detail. Every frame is a button: Tab reaches it, Enter or a
 * tap zooms into it (it then spans the width), "Reset zoom" or the top row zooms out. Text only.
 */

import { flameLayout, flameTree, frameLabel, hotFrames, samplesText } from "../flame.js";
import { clear, el } from "./dom.js";

const ROW_PX = 22;
const MIN_PX = 3;
/** key -> the zoomed frame's path, so a refresh redraws the same zoom */
const FOCUS = new Map();

/** A card for `profile` (the API's profile object); `note` says what the samples are of; the
 * zoom is remembered under `key` across redraws. */
export function flameCard(profile, title, note, key) {
  const card = el("div", "card flame-card");
  card.appendChild(el("h3", "chart-title", title));
  const tree = flameTree(profile);
  const meta = el("div", "flame-meta muted small", samplesText(profile) + (note ? " · " + note : ""));
  card.appendChild(meta);
  if (!tree.count) {
    card.appendChild(el("div", "empty-hint", "No samples yet: only requests slower than the profiling threshold are sampled."));
    return card;
  }
  const hot = hotFrames(tree, 3);
  if (hot.length) {
    const list = el("ol", "flame-hot");
    list.setAttribute("aria-label", "Where the samples end");
    for (const h of hot) {
      const item = el("li");
      item.appendChild(el("code", "flame-hot-frame", frameLabel(h.frame)));
      item.appendChild(el("span", "muted", " " + h.pct.toFixed(0) + " % of samples"));
      list.appendChild(item);
    }
    card.appendChild(list);
  }
  const controls = el("div", "flame-controls");
  const reset = el("button", "button subtle flame-reset", "Reset zoom");
  reset.type = "button";
  const detail = el("div", "flame-detail small");
  detail.setAttribute("aria-live", "polite");
  controls.appendChild(reset);
  controls.appendChild(detail);
  card.appendChild(controls);
  const graph = el("div", "flame-graph");
  graph.setAttribute("role", "group");
  graph.setAttribute("aria-label", title + ": flame graph, one button per frame");
  card.appendChild(graph);

  let focus = (key && FOCUS.get(key)) || [];
  const remember = () => {
    if (key) FOCUS.set(key, focus);
  };
  const draw = () => {
    clear(graph);
    const width = graph.clientWidth || 800;
    const rects = flameLayout(tree, focus, { minWidth: MIN_PX / width });
    let rows = 0;
    for (const r of rects) {
      rows = Math.max(rows, r.depth + 1);
      const b = el("button", "flame-node" + (r.frame ? "" : " flame-root"), r.label);
      b.type = "button";
      b.style.left = (r.x * 100).toFixed(4) + "%";
      b.style.width = (r.w * 100).toFixed(4) + "%";
      b.style.top = r.depth * ROW_PX + "px";
      const full = r.frame ? frameLabel(r.frame) : "all samples";
      const share = r.count + " samples, " + r.pct.toFixed(1) + " %";
      b.title = full + "\n" + share;
      b.setAttribute("aria-label", full + ": " + share);
      b.dataset.depth = String(r.depth);
      b.addEventListener("click", () => {
        focus = r.path;
        remember();
        detail.textContent = full + " — " + share;
        draw();
        const again = graph.querySelector('.flame-node[data-depth="' + r.depth + '"]');
        if (again) again.focus();
      });
      graph.appendChild(b);
    }
    graph.style.height = rows * ROW_PX + "px";
    reset.disabled = focus.length === 0;
  };
  reset.addEventListener("click", () => {
    focus = [];
    remember();
    detail.textContent = "";
    draw();
  });
  // Drawn once the card is in the page (the width is known then); redrawn when it changes.
  requestAnimationFrame(draw);
  if (typeof ResizeObserver === "function") {
    let last = 0;
    new ResizeObserver(() => {
      if (graph.clientWidth !== last) {
        last = graph.clientWidth;
        draw();
      }
    }).observe(graph);
  }
  return card;
}
