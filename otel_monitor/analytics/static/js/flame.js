/* Flame graphs (icicle: the root on top) from a profile as the API answers it
 * ({frames: [{function, file, line}], stacks: [{frames: [ids, root first], count}]}).
 * Pure functions, no DOM: the tree of stacks, and its rectangles in fractions of the width.
 */

/** "function (file:line)" for one frame; the file shortened to its last two parts when asked. */
export function frameLabel(frame, short) {
  if (!frame) return "?";
  const fn = String(frame.function ?? "?");
  let file = String(frame.file ?? "");
  if (short && file) {
    const parts = file.split(/[\\/]/);
    file = parts.slice(-2).join("/");
  }
  return file ? fn + " (" + file + ":" + frame.line + ")" : fn;
}

/** The stacks merged into a tree: {frame, count, self, children: [..]} under a root of every sample. */
export function flameTree(profile) {
  const frames = (profile && Array.isArray(profile.frames) && profile.frames) || [];
  const root = { frame: null, id: -1, count: 0, self: 0, children: [] };
  const stacks = (profile && Array.isArray(profile.stacks) && profile.stacks) || [];
  for (const stack of stacks) {
    const count = Number(stack && stack.count);
    if (!Number.isFinite(count) || count <= 0 || !Array.isArray(stack.frames)) continue;
    root.count += count;
    let node = root;
    for (const id of stack.frames) {
      if (!Number.isInteger(id) || id < 0 || id >= frames.length) break;
      let child = node.children.find((c) => c.id === id);
      if (!child) {
        child = { frame: frames[id], id, count: 0, self: 0, children: [] };
        node.children.push(child);
      }
      child.count += count;
      node = child;
    }
    node.self += count;
  }
  sortTree(root);
  return root;
}

function sortTree(node) {
  // Heaviest first, then by name: the same profile always draws the same way.
  node.children.sort((a, b) => b.count - a.count || frameLabel(a.frame).localeCompare(frameLabel(b.frame)));
  for (const c of node.children) sortTree(c);
}

/** The node at `path` (frame ids from the root's child down), or null. */
export function findPath(root, path) {
  let node = root;
  for (const id of path || []) {
    node = node.children.find((c) => c.id === id);
    if (!node) return null;
  }
  return node;
}

/**
 * Rectangles of the tree under `focusPath` (the zoomed node spans the whole width):
 * [{x, w (0..1), depth, path, count, pct (of all samples), label, frame}], parents before
 * children, left to right. Nodes narrower than `minWidth` (a fraction) are left out;
 * at most `maxDepth` rows. The ancestors of the focus are drawn full width above it.
 */
export function flameLayout(root, focusPath, options) {
  const minWidth = (options && options.minWidth) || 0.002;
  const maxDepth = (options && options.maxDepth) || 128;
  const total = root.count || 0;
  const rects = [];
  if (!total) return rects;
  const path = [];
  let focus = root;
  const ancestors = [root];
  for (const id of focusPath || []) {
    const next = focus.children.find((c) => c.id === id);
    if (!next) break;
    path.push(id);
    focus = next;
    ancestors.push(focus);
  }
  ancestors.forEach((node, depth) => {
    rects.push(rect(node, 0, 1, depth, path.slice(0, depth), total));
  });
  const scale = focus.count;
  const walk = (node, x, depth, nodePath) => {
    if (depth >= maxDepth) return;
    let left = x;
    for (const child of node.children) {
      const w = child.count / scale;
      if (w >= minWidth) {
        const childPath = nodePath.concat([child.id]);
        rects.push(rect(child, left, w, depth, childPath, total));
        walk(child, left, depth + 1, childPath);
      }
      left += w;
    }
  };
  walk(focus, 0, ancestors.length, path);
  return rects;
}

function rect(node, x, w, depth, path, total) {
  return {
    x,
    w,
    depth,
    path,
    count: node.count,
    self: node.self,
    pct: total ? (node.count / total) * 100 : 0,
    label: node.frame ? frameLabel(node.frame, true) : "all",
    frame: node.frame,
  };
}

/** The frames where most samples end (self time), heaviest first: [{frame, count, pct}]. */
export function hotFrames(root, limit) {
  const byKey = new Map();
  const visit = (node) => {
    if (node.frame && node.self > 0) {
      const key = frameLabel(node.frame);
      const entry = byKey.get(key) || { frame: node.frame, count: 0 };
      entry.count += node.self;
      byKey.set(key, entry);
    }
    for (const c of node.children) visit(c);
  };
  visit(root);
  const total = root.count || 1;
  return [...byKey.values()]
    .sort((a, b) => b.count - a.count || frameLabel(a.frame).localeCompare(frameLabel(b.frame)))
    .slice(0, limit || 5)
    .map((e) => ({ ...e, pct: (e.count / total) * 100 }));
}

/** "42 samples, one every 10 ms (about 420 ms)". */
export function samplesText(profile) {
  const n = Number(profile && profile.samples) || 0;
  const interval = Number(profile && profile.interval_ms) || 0;
  const words = n === 1 ? "1 sample" : n.toLocaleString("en-US") + " samples";
  if (!interval) return words;
  const ms = n * interval;
  const span = ms >= 1000 ? (ms / 1000).toFixed(1) + " s" : Math.round(ms) + " ms";
  return words + ", one every " + interval + " ms (about " + span + " of stacks)";
}
